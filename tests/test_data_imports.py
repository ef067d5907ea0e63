"""Every module of smol_align.data imports, and importing the package stays light."""

import importlib
import pkgutil
import subprocess
import sys

import smol_align.data


def test_every_module_imports():
    names = [m.name for m in pkgutil.walk_packages(smol_align.data.__path__, "smol_align.data.")]
    assert "smol_align.data.formats.hh_rlhf" in names and "smol_align.data.doctor" in names
    for name in names:
        importlib.import_module(name)


def test_import_does_not_pull_datasets_or_transformers():
    code = "import sys, smol_align.data; print(sorted({'datasets', 'transformers', 'torch', 'trl'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api():
    assert set(smol_align.data.__all__) >= {"normalize", "doctor", "formats", "detect_format", "last_report"}
    assert len(smol_align.data.formats()) == 20
