"""Preference data: the built-in demo set, normalizers for common schemas, and a doctor.

``normalize(data)`` turns any supported preference dataset into TRL's conversational format with
an explicit prompt; ``doctor(data)`` says what is wrong with the pairs before training on them.
``formats()`` lists the schemas it knows; ``detect_format(data)`` names the one that fits.
"""

from .demo import demo, pirate_voice
from .doctor import DoctorReport, doctor
from .normalize import NormalizeReport, detect_format, last_report, normalize
from .registry import formats, get_format

__all__ = [
    "demo",
    "pirate_voice",
    "DoctorReport",
    "NormalizeReport",
    "detect_format",
    "doctor",
    "formats",
    "get_format",
    "last_report",
    "normalize",
]
