"""One strict reading of ids and counts typed or sent from outside: ASCII digits, in range.

`str.isdigit()` is True for '²' and for Arabic-Indic digits, and `int()` reads '٣', ' 3' and
'1_000'; an id past 2**63 - 1 cannot reach a database column. Every view, form, command and
consumer reads ids and counts through these functions, and a caller turns NumberError into its
own answer (400 or 404, a field error, exit code 64, a close code).
"""
from __future__ import annotations

import re
from typing import Iterable

MAX_ID = 2**63 - 1  # the largest value of a BigAutoField (and of SQLite's INTEGER)
_DIGITS = re.compile(r"[0-9]+")  # re's [0-9] is ASCII only, unlike \d or isdigit()
_INTEGER = re.compile(r"-?[0-9]+")
_LONGEST = 40  # characters: more than any number we take, and int() is never asked for more


class NumberError(ValueError):
    """Text that is not the number asked for; the message says what was expected, not where.

    `field` names the flag or field it came from, for callers that prefix it.
    """

    def __init__(self, message: str, *, field: str = ""):
        self.field = field
        super().__init__(message)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:40] + "..."


def _read(value, pattern: re.Pattern) -> int | None:
    """An int as it is (never a bool); text matching `pattern` as its number; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= _LONGEST and pattern.fullmatch(text):
            return int(text)
    return None


def parse_id(value, *, what: str = "an id", minimum: int = 1) -> int:
    """A database id (or a cursor, with minimum=0) from text: digits 0-9 only, at most MAX_ID."""
    number = _read(value, _DIGITS)
    if number is None:
        raise NumberError(f"{_shown(value)} is not {what}: use the digits 0-9")
    if not minimum <= number <= MAX_ID:
        raise NumberError(f"{_shown(value)} is not {what}: ids run from {minimum} to {MAX_ID}")
    return number


def id_or_none(value) -> int | None:
    """The id a search box's text names, or None when the text is not an id (it means something else)."""
    try:
        return parse_id(value)
    except NumberError:
        return None


def parse_id_list(values: Iterable, *, what: str = "an id") -> list[int]:
    """Ids from values that are each one id or a comma-separated list; order kept, repeats dropped."""
    ids: list[int] = []
    for value in values:
        for part in str(value).split(","):
            if part.strip():
                ids.append(parse_id(part, what=what))
    return list(dict.fromkeys(ids))


def parse_int(value, *, field: str = "") -> int:
    """A whole number, optionally negative, in ASCII digits; the caller checks its range."""
    number = _read(value, _INTEGER)
    if number is None:
        raise NumberError(f"expected a whole number, got {_shown(value)}", field=field)
    return number


def parse_count(value, *, minimum: int, maximum: int, field: str = "") -> int:
    """A whole number within [minimum, maximum]."""
    number = parse_int(value, field=field)
    if not minimum <= number <= maximum:
        raise NumberError(f"must be between {minimum} and {maximum}, got {number}", field=field)
    return number
