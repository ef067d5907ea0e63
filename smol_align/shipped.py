"""The recipes and launcher configs shipped inside the package, by name: ``hh-rlhf-cpu``, ``multi-gpu``...

``smol-align dpo --config hh-rlhf-cpu`` reads ``smol_align/recipes/hh-rlhf-cpu.yaml`` from wherever the
package is installed; ``smol-align recipes`` lists them, ``--show NAME`` prints one to copy and
``--path NAME`` prints its file, for ``accelerate launch --config_file "$(smol-align recipes --path
multi-gpu)" -m smol_align dpo ...``.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from .errors import ConfigError

KINDS = {
    "recipes": "training recipe (smol-align <verb> --config NAME)",
    "recipes/accelerate": "accelerate config",
}


def shipped() -> dict[str, tuple[str, Path]]:
    """``name -> (kind, file)`` of every shipped YAML, recipes first."""
    root = Path(str(resources.files("smol_align")))
    found = {}
    for folder, kind in KINDS.items():
        for path in sorted((root / folder).glob("*.yaml")):
            found.setdefault(path.stem, (kind, path))
    return found


def describe() -> list[tuple[str, str, str]]:
    """``(name, kind, first comment line)`` of each shipped file."""
    rows = []
    for name, (kind, path) in shipped().items():
        first = next(
            (line.lstrip("# ").strip() for line in path.read_text().splitlines() if line.strip()), ""
        )
        first = first.split(". ")[0].split(": ")[0]
        rows.append((name, kind.split(" (")[0], first if len(first) <= 72 else first[:71] + "…"))
    return rows


def find(name: str) -> Path:
    """The file of the shipped recipe or config ``name`` (``hh-rlhf-cpu``, ``hh-rlhf-cpu.yaml``, ``multi-gpu``)."""
    known = shipped()
    stem = Path(name).name.removesuffix(".yaml").removesuffix(".yml")
    if stem in known and (Path(name).name == name or not Path(name).exists()):
        return known[stem][1]
    close = difflib.get_close_matches(stem, known, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    raise ConfigError(
        f"Recipe {name} not found: no such file, and no recipe of that name ships with smol_align.{hint} "
        f"Shipped: {', '.join(known)} (`smol-align recipes` lists them)."
    )


def config_path(value: str) -> str:
    """``--config``'s value as a file: itself when it exists, else the shipped recipe of that name."""
    return value if Path(value).is_file() else str(find(value))
