"""Preference data: one path from what the user has to TRL-ready train and held-out pairs.

``load(data, ...)``: source -> format -> ``columns=`` -> pairs -> train/held-out split, each row
normalized once (:mod:`.load`); ``normalize(data)`` does the middle of it for any supported
dataset; ``doctor(data)`` says what is wrong with the pairs before training on them.
``formats()`` lists the schemas it knows (:mod:`.formats`); ``detect_format(data)`` names the one
that fits; ``demo()`` is the built-in pirate-voice set.
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
