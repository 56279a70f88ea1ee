"""The checks every setting and site key shares, so that all say the same thing the same way."""
from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` was probably meant to be, for a "did you mean" hint; None if none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)``, or nothing."""
    guess = closest(word, choices)
    return f" (did you mean {guess!r}?)" if guess else ""


def whole_number(value: Any, smallest: int) -> str | None:
    """What ``value`` should have been, if it is not a whole number of at least ``smallest``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < smallest:
        return f"a whole number of at least {smallest}"
    return None


def seconds(value: Any) -> str | None:
    """What ``value`` should have been, if it is not a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return "a positive number of seconds"
    return None


def duration_problems(durations: Any) -> list[str]:
    """What is wrong with ``expected_durations`` ({algorithm name: seconds}), one message per entry."""
    if not isinstance(durations, Mapping):
        return [f"expected a mapping of algorithm names to seconds, e.g. {{'Millepede': 3600}}, got {durations!r}"]
    problems = []
    for name, value in durations.items():
        if not isinstance(name, str) or not name:
            problems.append(f"{name!r} is not an algorithm name")
        wanted = seconds(value)
        if wanted:
            problems.append(f"{name}: expected {wanted}, got {value!r}")
    return problems
