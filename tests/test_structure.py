"""The shape of the package: the layer order stated in smol_align's docstring holds (no import points up),
no import cycle, no private name imported across modules.

Imports are read with ``ast``, deferred ones inside functions included: a deferred import still ties two
modules together, it only hides the cycle from ``import smol_align``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import smol_align

PACKAGE = Path(smol_align.__file__).parent


def module_files(root: Path = PACKAGE) -> dict[str, Path]:
    """``{"smol_align.data.load": path, ...}``, the package itself as ``smol_align``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(root: Path = PACKAGE) -> list[tuple[str, str, str, int]]:
    """Every import of one smol_align module by another: ``(importer, imported module, name, line)``;
    ``name`` is the name taken from it ("" for ``import smol_align.x``). ``from .data import doctor`` imports
    the module ``smol_align.data.doctor``, and ``from .data.load import X`` runs
    ``smol_align/data/__init__.py`` as well: both count."""
    modules = module_files(root)
    found = []
    for importer, path in modules.items():
        package = importer if path.name == "__init__.py" else importer.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [(alias.name, "") for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                targets = []
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.append((submodule, "") if submodule in modules else (base, alias.name))
            else:
                continue
            for target, name in targets:
                if target.split(".")[0] != root.name:
                    continue
                found.append((importer, target, name, node.lineno))
                # the packages above the target that the importer is not inside of run first
                parts = target.split(".")
                for i in range(2, len(parts)):
                    parent = ".".join(parts[:i])
                    if parent in modules and not (importer + ".").startswith(parent + "."):
                        found.append((importer, parent, "", node.lineno))
    return found


def layers(root: Path = PACKAGE) -> list[list[str]]:
    """The layer order of the package docstring: the indented lines after "Layers, top to bottom", each a
    comma-separated list of the modules (or subpackages) of one layer, then two spaces and what they are."""
    doc = ast.get_docstring(ast.parse((root / "__init__.py").read_text())) or ""
    assert "Layers, top to bottom" in doc, "smol_align's docstring states no layer order"
    block = doc.split("Layers, top to bottom", 1)[1].split("\n\n", 2)[1]
    return [re.split(r"\s{2,}", line.strip())[0].replace(" ", "").split(",") for line in block.splitlines()]


def layer_of(module: str, order: list[list[str]]) -> int | None:
    """``smol_align.data.load`` is in the layer of ``data``; the package itself in that of ``__init__``."""
    first = module.split(".")[1] if "." in module else "__init__"
    return next((i for i, names in enumerate(order) if first in names), None)


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(root: Path = PACKAGE) -> list[str]:
    order = layers(root)
    found = []
    for importer, target, _, line in imports(root):
        above, below = layer_of(importer, order), layer_of(target, order)
        if above is not None and below is not None and below < above:
            found.append(f"{importer} (line {line}) imports {target}, a layer above it")
    return sorted(set(found))


def import_cycles(root: Path = PACKAGE) -> list[list[str]]:
    return cycles({(importer, target) for importer, target, _, _ in imports(root) if importer != target})


def private_imports(root: Path = PACKAGE) -> list[str]:
    return sorted(
        f"{importer} (line {line}) imports {target}.{name}"
        for importer, target, name, line in imports(root)
        if name.startswith("_") and not name.startswith("__") and importer != target
    )


def test_the_layer_order_places_every_module():
    order = layers()
    assert len(order) >= 5, order
    named = [name for names in order for name in names]
    assert len(named) == len(set(named)), f"a module in two layers: {order}"
    unplaced = sorted({m for m in module_files() if layer_of(m, order) is None})
    assert not unplaced, (
        f"modules in no layer of smol_align's docstring (add each where it belongs): {unplaced}"
    )


def test_no_import_points_up():
    assert upward_imports() == []


def test_no_import_cycle():
    assert import_cycles() == []


def test_no_private_name_imported_across_modules():
    assert private_imports() == []


def test_the_checks_see_a_cycle_an_upward_import_and_a_private_name(tmp_path):
    """The checks above on a made-up package that breaks each rule once."""
    root = tmp_path / "smol_align"
    (root / "data").mkdir(parents=True)
    (root / "__init__.py").write_text(
        '"""Made up.\n\nLayers, top to bottom:\n\n    run  the runner\n    data\n"""\n'
    )
    (root / "run.py").write_text("from .data.load import _rows\n")
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "load.py").write_text("def f():\n    from ..run import go\n")
    assert upward_imports(root) == ["smol_align.data.load (line 2) imports smol_align.run, a layer above it"]
    assert import_cycles(root) == [["smol_align.data.load", "smol_align.run"]]
    assert private_imports(root) == ["smol_align.run (line 1) imports smol_align.data.load._rows"]


ONE_HOME = {  # what is written once, and the module it lives in
    "AutoTokenizer": "smol_align.models",  # tokenizer loading: models.load_tokenizer
    "max_memory_allocated(": "smol_align.metrics",  # the peak-memory meter: metrics.peak_memory_bytes
    "ru_maxrss": "smol_align.metrics",
    "VmHWM": "smol_align.metrics",
    "def preference_metrics": "smol_align.reference",  # TRL's rewards/*; evaluate's held-out figures use it
    "def tokenize_pairs": "smol_align.data.tokens",
}


def homes(text: str, root: Path = PACKAGE) -> list[str]:
    return [module for module, path in module_files(root).items() if text in path.read_text()]


def test_one_of_each():
    assert {text: homes(text) for text in ONE_HOME} == {text: [home] for text, home in ONE_HOME.items()}


def test_one_table_of_renamed_options():
    """presets.RENAMED maps older TRL/transformers names to today's; the CLI's table of TRL's script names
    repeats none of them."""
    from smol_align.cli import TRL_NAMES
    from smol_align.presets import RENAMED

    assert set(TRL_NAMES) & set(RENAMED) == set()


def test_each_heldout_figure_has_one_name_in_the_metrics():
    """TRL's ``eval_*`` name where ``trainer.evaluate()`` logs the figure, else ``eval_<figure>``; not
    both."""
    from smol_align.metrics import heldout_metrics

    figures = {
        "reward_accuracy": 0.5,
        "reward_margin": 0.25,
        "logps_chosen": -3.0,
        "preference_accuracy": 0.75,
    }
    assert heldout_metrics({**figures, "logps": {"chosen": [-3.0]}}) == {
        "eval_rewards/accuracies": 0.5,
        "eval_rewards/margins": 0.25,
        "eval_logps/chosen": -3.0,
        "eval_preference_accuracy": 0.75,
    }
    assert heldout_metrics(figures, "start")["start_rewards/margins"] == 0.25
