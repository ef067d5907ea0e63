"""Captain Byte looks at pictures: vision-language pairs on shapes drawn in code (PIL, no files).

Each pair shows one coloured shape and asks about it; *chosen* names the right colour in the Captain's voice
("Arr, that circle be red, matey!"), *rejected* a wrong colour in plain English ("The circle is blue."). Two
things to learn: the voice (learnable from the text alone, so a run shows learning even with a random vision
tower) and the colour (learnable only by looking). Drawn from a seed: the same ``n`` and ``seed`` give the same
pairs; held-out pairs (another seed) show shapes, colours and positions in combinations of their own.
"""

from __future__ import annotations

import random

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 170),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
QUESTIONS = (
    "What colour is the {shape}?",
    "Which colour is this {shape}?",
    "Tell me the colour of the {shape}.",
)
_OPENERS = ("Arr, that {shape} be {colour}, matey!", "Aye, the {shape} be {colour}, savvy?")


def draw(shape: str, colour: str, size: int = 48, rng: random.Random | None = None):
    """A ``size`` x ``size`` RGB image of one ``shape`` in ``colour`` on a light background, placed by ``rng``."""
    from PIL import Image, ImageDraw

    rng = rng or random.Random(0)
    image = Image.new("RGB", (size, size), tuple(rng.randint(225, 255) for _ in range(3)))
    side = rng.randint(size // 2, size - 8)
    x, y = rng.randint(2, size - side - 2), rng.randint(2, size - side - 2)
    box, fill = (x, y, x + side, y + side), COLOURS[colour]
    pen = ImageDraw.Draw(image)
    if shape == "circle":
        pen.ellipse(box, fill=fill)
    elif shape == "square":
        pen.rectangle(box, fill=fill)
    else:
        pen.polygon([(x + side // 2, y), (x, y + side), (x + side, y + side)], fill=fill)
    return image


def image_pairs(n: int = 24, seed: int = 0) -> list[dict]:
    """``n`` vision preference rows in TRL's format: ``images`` (one PIL image), ``prompt``, ``chosen``,
    ``rejected`` (conversational)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        shape, colour = rng.choice(SHAPES), rng.choice(list(COLOURS))
        wrong = rng.choice([c for c in COLOURS if c != colour])
        rows.append(
            {
                "images": [draw(shape, colour, rng=rng)],
                "prompt": [{"role": "user", "content": rng.choice(QUESTIONS).format(shape=shape)}],
                "chosen": [
                    {"role": "assistant", "content": rng.choice(_OPENERS).format(shape=shape, colour=colour)}
                ],
                "rejected": [{"role": "assistant", "content": f"The {shape} is {wrong}."}],
            }
        )
    return rows
