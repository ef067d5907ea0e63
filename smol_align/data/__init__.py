"""Preference data: the built-in demo set, normalizers for common schemas, and a doctor."""
