"""Every module of smol_align.data imports, and importing the package stays light."""

import importlib
import pkgutil
import subprocess
import sys

import smol_align.data


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(smol_align.data.__path__, "smol_align.data.")]
    assert "smol_align.data.rows.hh" in names and "smol_align.data.doctor" in names
    for name in names:
        importlib.import_module(name)


def test_import_does_not_pull_datasets_or_transformers():
    code = "import sys, smol_align.data; print(sorted({'datasets', 'transformers', 'torch', 'trl'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api():
    assert set(smol_align.data.__all__) >= {
        "load",
        "normalize",
        "doctor",
        "formats",
        "detect_format",
        "last_report",
    }
    names = smol_align.data.formats()
    assert {
        "alpaca",
        "sharegpt",
        "chatml.intel",
        "chatml.ultra",
        "llama3.argilla",
        "hh-rlhf",
        "trl-unpaired",
        "trl-prompt-completion",
        "trl-messages",
        "trl-text",
        "alpaca-sft",
    } <= set(names)
    assert len(names) == 38  # with trl-unpaired (KTO rows) and the four SFT row formats


def test_the_format_table_is_built_in_one_module_without_registration():
    """formats.py imports the row modules; no row module imports formats.py (no cycle)."""
    from pathlib import Path

    rows = Path(smol_align.data.__file__).parent / "rows"
    for module in rows.glob("*.py"):
        imports = [line for line in module.read_text().splitlines() if line.startswith(("from ", "import "))]
        assert not [line for line in imports if "formats" in line or "normalize" in line], module
