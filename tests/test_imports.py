"""Every module imports (no name used without its import), and `import smol_align` stays light."""

import importlib
import pkgutil
import subprocess
import sys

import smol_align


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(smol_align.__path__, "smol_align.")]
    assert len(names) > 20
    for name in names:
        if name != "smol_align.__main__":  # runs the CLI
            importlib.import_module(name)


def test_import_smol_align_pulls_no_heavy_library():
    code = "import sys, smol_align; print(sorted({'torch', 'transformers', 'trl', 'datasets'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api():
    for name in (
        "train_dpo",
        "train_orpo",
        "train_kto",
        "build_dpo_trainer",
        "build_orpo_trainer",
        "build_kto_trainer",
        "load_model",
        "evaluate",
        "iterate",
        "presets",
        "DatasetFormatError",
        "setup_chat_format",
        "__version__",
    ):
        assert hasattr(smol_align, name), name


def test_evaluate_and_compare_stay_functions_after_their_modules_are_imported():
    import smol_align.compare  # noqa: F401
    import smol_align.evaluate  # noqa: F401
    import smol_align.iterate  # noqa: F401

    assert callable(smol_align.evaluate) and callable(smol_align.compare) and callable(smol_align.iterate)
