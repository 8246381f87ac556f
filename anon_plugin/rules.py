"""The rules values are checked by, shared by the settings (``config``) and the album policies (``policies``).

A ``Rule`` says in a few words what it accepts (``describe``), cleans a value
as TOML or JSON gives it (``check``), and reads one from text, as the
environment or the command line gives it (``from_text``). A bad value is
refused in one wording everywhere: ``must be <describe>, got <value>``; the
caller puts the key or field, and where the value came from, in front.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

# The words a boolean is written with in text (the environment, ``policy set``); in TOML and JSON, real booleans.
BOOLEAN_WORDS = {"true": True, "yes": True, "on": True, "1": True,
                 "false": False, "no": False, "off": False, "0": False}
NONE_WORDS = ("", "none")  # how an optional value is left unset in text

BAD = object()  # what a rule's ``clean`` returns for a value it refuses


class Invalid(ValueError):
    """A value broke its rule: ``must be <describe>, got <value>``."""


@dataclass(frozen=True)
class Rule:
    """``clean(value, base)`` returns the clean value, or ``BAD`` (``base``: the folder relative paths start from).

    ``from_text`` turns text into such a value as best it can and returns the
    text itself when it cannot, so that ``check`` refuses it in the same words.
    """

    describe: str
    clean: Callable[[Any, Path], Any]
    from_text: Callable[[str], Any] = str

    def check(self, value: Any, base: Path = Path()) -> Any:
        """The clean value; raises ``Invalid`` when the rule refuses it."""
        clean = self.clean(value, base)
        if clean is BAD:
            raise Invalid(f"must be {self.describe}, got {value!r}")
        return clean


def parsed(convert: Callable[[str], Any], optional: bool = False) -> Callable[[str], Any]:
    """A ``from_text`` that converts the stripped text (and reads ``NONE_WORDS`` as None when ``optional``)."""
    def from_text(text: str) -> Any:
        if optional and text.strip().lower() in NONE_WORDS:
            return None
        try:
            return convert(text.strip())
        except ValueError:
            return text

    return from_text


def is_number(value: object) -> TypeGuard[int | float]:
    """An int or a finite float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def boolean() -> Rule:
    return Rule("true or false", lambda v, base: v if isinstance(v, bool) else BAD,
                lambda text: BOOLEAN_WORDS.get(text.strip().lower(), text))


def choice(*options: str) -> Rule:
    return Rule(f"one of {', '.join(options)}", lambda v, base: v if isinstance(v, str) and v in options else BAD)


def integer(minimum: int, maximum: int | None = None) -> Rule:
    describe = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def clean(v: object, base: Path) -> object:
        ok = isinstance(v, int) and not isinstance(v, bool) and minimum <= v and (maximum is None or v <= maximum)
        return v if ok else BAD

    return Rule(describe, clean, parsed(int))


def fraction(optional: bool = False) -> Rule:
    """A number from 0 to 1, as a float (or None, when ``optional``)."""
    def clean(v: object, base: Path) -> object:
        if optional and v is None:
            return None
        return float(v) if is_number(v) and 0.0 <= v <= 1.0 else BAD

    return Rule("a number from 0 to 1" + (" or none" if optional else ""), clean, parsed(float, optional))


def seconds() -> Rule:
    """A number of seconds > 0, as a float."""
    return Rule("a number of seconds > 0", lambda v, base: float(v) if is_number(v) and v > 0 else BAD,
                parsed(float))
