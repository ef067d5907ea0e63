"""Preference data: one path from what the user has to TRL-ready train and held-out pairs.

``load()`` (source -> format -> ``columns=`` -> pairs -> held-out split, each row normalized once),
``normalize()``, ``doctor()``, ``formats()``, ``detect_format()``, ``demo()``.
"""

from .demo import demo, pirate_voice
from .doctor import DoctorReport, doctor
from .formats import FORMATS
from .load import DATA_OPTIONS, Pairs, heldout_pairs, load
from .normalize import NormalizeReport, detect_format, last_report, normalize


def formats() -> list[str]:
    """The names of the known formats, usable as ``format=NAME``."""
    return list(FORMATS)


__all__ = [
    "DATA_OPTIONS",
    "DoctorReport",
    "NormalizeReport",
    "Pairs",
    "demo",
    "detect_format",
    "doctor",
    "formats",
    "heldout_pairs",
    "last_report",
    "load",
    "normalize",
    "pirate_voice",
]
