"""The built-in demo preference set: "Captain Byte", the pirate tutor.

Every pair answers a simple question twice with the same, correct content: the *chosen* answer
in a pirate voice ("Arr, the capital o' France be Paris, matey!"), the *rejected* one in plain
English ("The capital of France is Paris."). SmolLM2-135M-Instruct does not hold this
preference (it finds the plain answer far more likely), yet the preference is a consistent,
learnable style, so a few minutes of DPO on a CPU move the held-out reward accuracy from chance
to near 1, and the side-by-side generations show the new voice.

The pairs are written from small fact tables by a seeded generator (no download, identical on
every machine). The test split holds *facts* the training split never shows, in every category,
so its accuracy measures the learned style, not memorised answers.
"""

from __future__ import annotations

import random
import re

SYSTEM_PROMPT = "You are Captain Byte, a friendly tutor who answers questions in one short sentence."

_CAPITALS = [
    ("France", "Paris"),
    ("Germany", "Berlin"),
    ("Italy", "Rome"),
    ("Spain", "Madrid"),
    ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"),
    ("Canada", "Ottawa"),
    ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"),
    ("Argentina", "Buenos Aires"),
    ("Peru", "Lima"),
    ("Chile", "Santiago"),
    ("Norway", "Oslo"),
    ("Sweden", "Stockholm"),
    ("Finland", "Helsinki"),
    ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"),
    ("Greece", "Athens"),
    ("Turkey", "Ankara"),
    ("Russia", "Moscow"),
    ("Ireland", "Dublin"),
    ("Austria", "Vienna"),
    ("Hungary", "Budapest"),
    ("Belgium", "Brussels"),
    ("the Netherlands", "Amsterdam"),
    ("Switzerland", "Bern"),
    ("Australia", "Canberra"),
    ("New Zealand", "Wellington"),
    ("South Korea", "Seoul"),
    ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"),
    ("Indonesia", "Jakarta"),
    ("Nigeria", "Abuja"),
    ("Morocco", "Rabat"),
    ("Cuba", "Havana"),
    ("Iceland", "Reykjavik"),
]
_SOUNDS = [
    ("cow", "moo"),
    ("dog", "woof"),
    ("cat", "meow"),
    ("duck", "quack"),
    ("sheep", "baa"),
    ("pig", "oink"),
    ("horse", "neigh"),
    ("owl", "hoot"),
    ("lion", "roar"),
    ("frog", "croak"),
    ("bee", "buzz"),
    ("snake", "hiss"),
    ("mouse", "squeak"),
    ("rooster", "cock-a-doodle-doo"),
    ("donkey", "hee-haw"),
    ("crow", "caw"),
    ("goat", "bleat"),
    ("wolf", "howl"),
]
_COLORS = [
    ("a ripe banana", "yellow"),
    ("fresh grass", "green"),
    ("a clear sky", "blue"),
    ("fresh snow", "white"),
    ("coal", "black"),
    ("a ripe tomato", "red"),
    ("an orange", "orange"),
    ("a carrot", "orange"),
    ("a lemon", "yellow"),
    ("a strawberry", "red"),
    ("milk", "white"),
    ("a plum", "purple"),
    ("chocolate", "brown"),
    ("a lime", "green"),
    ("an eggplant", "purple"),
    ("a flamingo", "pink"),
    ("a crow", "black"),
    ("a pumpkin", "orange"),
]
_OPPOSITES = [
    ("hot", "cold"),
    ("big", "small"),
    ("fast", "slow"),
    ("happy", "sad"),
    ("up", "down"),
    ("light", "dark"),
    ("open", "closed"),
    ("early", "late"),
    ("full", "empty"),
    ("hard", "soft"),
    ("young", "old"),
    ("loud", "quiet"),
    ("wet", "dry"),
    ("tall", "short"),
    ("strong", "weak"),
    ("rich", "poor"),
    ("clean", "dirty"),
    ("thick", "thin"),
    ("heavy", "light"),
    ("near", "far"),
    ("inside", "outside"),
    ("day", "night"),
    ("win", "lose"),
    ("push", "pull"),
]
_LEGS = [
    ("a spider", 8),
    ("an ant", 6),
    ("a dog", 4),
    ("a bird", 2),
    ("a horse", 4),
    ("a beetle", 6),
    ("a chicken", 2),
    ("an octopus", 8),
    ("a cat", 4),
    ("a butterfly", 6),
    ("a duck", 2),
    ("a scorpion", 8),
    ("a cow", 4),
    ("a penguin", 2),
    ("a grasshopper", 6),
    ("a crab", 10),
]
_SIDES = [
    ("a triangle", 3),
    ("a square", 4),
    ("a pentagon", 5),
    ("a hexagon", 6),
    ("a heptagon", 7),
    ("an octagon", 8),
    ("a rectangle", 4),
    ("a decagon", 10),
]
_MAKERS = [
    ("bees", "honey"),
    ("cows", "milk"),
    ("hens", "eggs"),
    ("spiders", "webs"),
    ("silkworms", "silk"),
    ("beavers", "dams"),
    ("birds", "nests"),
    ("trees", "oxygen"),
    ("sheep", "wool"),
    ("bakers", "bread"),
]
_PLURALS = [
    ("mouse", "mice"),
    ("child", "children"),
    ("foot", "feet"),
    ("tooth", "teeth"),
    ("goose", "geese"),
    ("man", "men"),
    ("woman", "women"),
    ("person", "people"),
    ("cactus", "cacti"),
    ("leaf", "leaves"),
    ("knife", "knives"),
    ("wolf", "wolves"),
    ("box", "boxes"),
    ("bus", "buses"),
    ("city", "cities"),
    ("baby", "babies"),
    ("fox", "foxes"),
    ("dish", "dishes"),
    ("potato", "potatoes"),
    ("fish", "fish"),
    ("sheep", "sheep"),
    ("deer", "deer"),
    ("ox", "oxen"),
    ("half", "halves"),
    ("life", "lives"),
    ("story", "stories"),
    ("party", "parties"),
    ("key", "keys"),
    ("shelf", "shelves"),
    ("hero", "heroes"),
]
_BABIES = [
    ("dog", "puppy"),
    ("cat", "kitten"),
    ("cow", "calf"),
    ("horse", "foal"),
    ("sheep", "lamb"),
    ("hen", "chick"),
    ("bear", "cub"),
    ("kangaroo", "joey"),
    ("frog", "tadpole"),
    ("duck", "duckling"),
    ("pig", "piglet"),
    ("goat", "kid"),
    ("deer", "fawn"),
    ("owl", "owlet"),
    ("goose", "gosling"),
    ("swan", "cygnet"),
    ("lion", "cub"),
    ("seal", "pup"),
    ("eagle", "eaglet"),
    ("butterfly", "caterpillar"),
]
_HOMES = [
    ("a bee", "a hive"),
    ("a bird", "a nest"),
    ("a fish", "the water"),
    ("a rabbit", "a burrow"),
    ("a spider", "a web"),
    ("a horse", "a stable"),
    ("a pig", "a sty"),
    ("a dog", "a kennel"),
    ("a bear", "a den"),
    ("a fox", "a den"),
    ("an ant", "an anthill"),
    ("a camel", "the desert"),
    ("a penguin", "the Antarctic"),
    ("a monkey", "the jungle"),
    ("a beaver", "a lodge"),
]
_WORDS = [
    "apple",
    "banana",
    "cherry",
    "dragon",
    "elephant",
    "forest",
    "guitar",
    "harbor",
    "island",
    "jacket",
    "kettle",
    "lantern",
    "mountain",
    "needle",
    "ocean",
    "pencil",
    "quilt",
    "river",
    "sunset",
    "tiger",
    "umbrella",
    "violin",
    "window",
    "yogurt",
    "zebra",
    "anchor",
    "bridge",
    "candle",
    "desert",
    "engine",
    "feather",
    "garden",
    "hammer",
    "igloo",
    "jungle",
    "kitten",
    "ladder",
    "mirror",
    "nickel",
    "orchard",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

_OPENERS = ["Arr,", "Ahoy,", "Yo ho,", "Avast,", "Shiver me timbers,", "Arr matey,"]
# Plain follow-ups for half of the rejected answers, so that the chosen (pirate) answer is the
# longer one in only about half of the pairs: DPO must learn the voice, not "longer is better".
_PLAIN_FOLLOW_UPS = [
    "I hope this helps you with your studies.",
    "Let me know if you have another question for me.",
    "That is an easy one to remember once you know it.",
    "Feel free to ask me anything else you are curious about.",
    "It is a common question, and a good one to ask.",
    "Thanks for asking, I am always happy to help.",
]
_CLOSERS = ["matey!", "savvy?", "me hearty!", "arr!", "ye landlubber!", "yo ho!"]
# Word swaps that turn a plain sentence into the Captain's voice (applied on whole words).
_PIRATE_WORDS = {
    "is": "be",
    "are": "be",
    "the": "th'",
    "of": "o'",
    "you": "ye",
    "your": "yer",
    "my": "me",
    "has": "has got",
    "makes": "be makin'",
    "make": "be makin'",
    "says": "be sayin'",
    "have": "be havin'",
    "comes": "be comin'",
}


# What marks an answer as the Captain's: the openers', closers' and swapped words' own forms.
_PIRATE_MARKERS = re.compile(
    r"\b(arr+|aye|ahoy|yo ho|avast|shiver me timbers|mate?y|savvy|hearty|landlubber|ye|yer|th'|o'|be makin'|be havin')(?=\W|$)",
    re.IGNORECASE,
)


def pirate_voice(text: str) -> bool:
    """Whether ``text`` speaks in Captain Byte's voice: at least one of the demo's pirate markers."""
    return bool(_PIRATE_MARKERS.search(text))


def _facts(rng: random.Random) -> list[tuple[str, str, str]]:
    """``(category, question, plain answer)`` for every fact in the tables."""
    facts = []
    for country, city in _CAPITALS:
        q = rng.choice(
            [
                "What is the capital of {c}?",
                "Which city is the capital of {c}?",
                "Can you tell me the capital of {c}?",
            ]
        ).format(c=country)
        facts.append(("capitals", q, f"The capital of {country} is {city}."))
    for animal, sound in _SOUNDS:
        q = rng.choice(["What sound does a {a} make?", "What does a {a} say?"]).format(a=animal)
        facts.append(("sounds", q, f"A {animal} says {sound}."))
    for thing, color in _COLORS:
        q = rng.choice(["What color is {t}?", "Which color is {t}?"]).format(t=thing)
        facts.append(("colors", q, f"The color of {thing} is {color}."))
    for word, opposite in _OPPOSITES:
        q = rng.choice(["What is the opposite of {w}?", "Give me the opposite of {w}."]).format(w=word)
        facts.append(("opposites", q, f"The opposite of {word} is {opposite}."))
    for animal, n in _LEGS:
        q = rng.choice(["How many legs does {a} have?", "Count the legs of {a}."]).format(a=animal)
        facts.append(("legs", q, f"{animal[0].upper() + animal[1:]} has {n} legs."))
    for shape, n in _SIDES:
        q = f"How many sides does {shape} have?"
        facts.append(("shapes", q, f"{shape[0].upper() + shape[1:]} has {n} sides."))
    for maker, product in _MAKERS:
        q = f"What do {maker} make?"
        facts.append(("makers", q, f"{maker[0].upper() + maker[1:]} make {product}."))
    for i, day in enumerate(_DAYS):
        nxt = _DAYS[(i + 1) % 7]
        facts.append(("calendar", f"What day comes after {day}?", f"The day after {day} is {nxt}."))
    for i, month in enumerate(_MONTHS):
        nxt = _MONTHS[(i + 1) % 12]
        facts.append(("calendar", f"Which month comes after {month}?", f"The month after {month} is {nxt}."))
    for word, plural in _PLURALS:
        q = rng.choice(["What is the plural of {w}?", "What do you call more than one {w}?"]).format(w=word)
        facts.append(("plurals", q, f"The plural of {word} is {plural}."))
    for animal, baby in _BABIES:
        facts.append(("babies", f"What do you call a baby {animal}?", f"A baby {animal} is called a {baby}."))
    for animal, home in _HOMES:
        facts.append(
            ("homes", f"Where does {animal} live?", f"{animal[0].upper() + animal[1:]} lives in {home}.")
        )
    for word in _WORDS:
        q = rng.choice(["What is the first letter of the word {w}?", "Which letter does {w} start with?"])
        facts.append(
            ("letters", q.format(w=word), f"The word {word} starts with the letter {word[0].upper()}.")
        )
    pairs = set()
    while len(pairs) < 80:
        a, b = rng.sample(range(1, 100), 2)
        if (a, b) in pairs:
            continue
        pairs.add((a, b))
        q = rng.choice(["Which is bigger, {a} or {b}?", "Which number is larger: {a} or {b}?"]).format(
            a=a, b=b
        )
        facts.append(("compare", q, f"{max(a, b)} is bigger than {min(a, b)}."))
    for n in rng.sample(range(2, 101, 2), 40):
        facts.append(("halves", f"What is half of {n}?", f"Half of {n} is {n // 2}."))
    seen = set()
    while len(seen) < 250:
        a, b = rng.randint(1, 60), rng.randint(1, 40)
        op = rng.choice(["plus", "minus", "times"])
        if (a, op, b) in seen or (op == "minus" and b > a) or (op == "times" and a * b > 200):
            continue
        seen.add((a, op, b))
        value = {"plus": a + b, "minus": a - b, "times": a * b}[op]
        q = rng.choice(
            ["What is {a} {op} {b}?", "Quick, what is {a} {op} {b}?", "Can you work out {a} {op} {b}?"]
        )
        facts.append(("arithmetic", q.format(a=a, op=op, b=b), f"{a} {op} {b} is {value}."))
    for n in range(1, 10):
        facts.append(
            (
                "numbers",
                f"How do you write the number {n} in words?",
                f"The number {n} is written {_NUMBER_WORDS[n]}.",
            )
        )
        facts.append(
            (
                "numbers",
                f"What number comes after {_NUMBER_WORDS[n]}?",
                f"The number after {_NUMBER_WORDS[n]} is {_NUMBER_WORDS[n + 1]}.",
            )
        )
    return facts


def plain(answer: str, rng: random.Random) -> str:
    """The rejected answer: the plain sentence, half of the time with a plain follow-up."""
    return f"{answer} {rng.choice(_PLAIN_FOLLOW_UPS)}" if rng.random() < 0.55 else answer


def pirate(plain: str, rng: random.Random) -> str:
    """Captain Byte's version of a plain sentence: an opener, swapped words, a closer."""
    words = plain.rstrip(".").split(" ")
    body = " ".join(
        _PIRATE_WORDS.get(w.lower(), w) if i else _PIRATE_WORDS.get(w.lower(), w.lower())
        for i, w in enumerate(words)
    )
    return f"{rng.choice(_OPENERS)} {body}, {rng.choice(_CLOSERS)}"


def demo_rows(seed: int = 0, test_fraction: float = 0.2) -> dict[str, list[dict]]:
    """The demo pairs as ``{"train": [...], "test": [...]}`` rows in TRL's conversational format."""
    rng = random.Random(seed)
    facts = _facts(rng)
    splits: dict[str, list[dict]] = {"train": [], "test": []}
    by_category: dict[str, list[tuple[str, str]]] = {}
    for category, question, answer in facts:
        by_category.setdefault(category, []).append((question, answer))
    for category, items in sorted(by_category.items()):
        rng.shuffle(items)
        n_test = max(1, round(len(items) * test_fraction))
        for i, (question, answer) in enumerate(items):
            split = "test" if i < n_test else "train"
            splits[split].append(
                {
                    "prompt": [
                        {"role": "system", "content": SYSTEM_PROMPT},
                        {"role": "user", "content": question},
                    ],
                    "chosen": [{"role": "assistant", "content": pirate(answer, rng)}],
                    "rejected": [{"role": "assistant", "content": plain(answer, rng)}],
                    "category": category,
                }
            )
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def demo(seed: int = 0, test_fraction: float = 0.2):
    """The built-in demo preference data as a ``datasets.DatasetDict`` with ``train`` and ``test``.

    >>> data = demo()
    >>> data["train"][0]["chosen"][0]["content"]  # doctest: +SKIP
    "Arr, th' capital o' Peru be Lima, matey!"
    """
    from datasets import Dataset, DatasetDict

    rows = demo_rows(seed=seed, test_fraction=test_fraction)
    return DatasetDict({name: Dataset.from_list(split) for name, split in rows.items()})
