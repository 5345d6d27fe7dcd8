"""Typed, validated solver options (STYLE habit 4).

Each method declares a frozen dataclass deriving from :class:`Options`; a
field's ``metadata={"check": ...}`` names its rule. Validation happens once,
when the registry hands the options to the method, and raises one message
shape: ``the 'time_limit' option of p2/milp must be a positive number; got -1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import InputError

_RULES = {
    "positive": (lambda v: _is_number(v) and v > 0, "must be a positive number"),
    "nonnegative": (lambda v: _is_number(v) and v >= 0, "must be a non-negative number"),
    "positive_int": (lambda v: _is_int(v) and v > 0, "must be a positive integer"),
    "nonnegative_int": (lambda v: _is_int(v) and v >= 0, "must be a non-negative integer"),
    "unit": (lambda v: _is_number(v) and 0 <= v <= 1, "must be a number in [0, 1]"),
    "bool": (lambda v: isinstance(v, bool), "must be true or false"),
    "optional_positive": (lambda v: v is None or (_is_number(v) and v > 0),
                          "must be a positive number or omitted"),
    "optional_positive_int": (lambda v: v is None or (_is_int(v) and v > 0),
                              "must be a positive integer or omitted"),
    "optional_unit": (lambda v: v is None or (_is_number(v) and 0 <= v <= 1),
                      "must be a number in [0, 1] or omitted"),
    "optional_seed": (lambda v: v is None or (_is_int(v) and v >= 0),
                      "must be a non-negative integer or omitted"),
}


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def option(default, check: str | tuple, doc: str = ""):
    """Declare an option: ``check`` is a rule name of :data:`_RULES` or a tuple of
    allowed values."""
    return field(default=default, metadata={"check": check, "doc": doc})


@dataclass(frozen=True)
class Options:
    """Base of every method's options. Subclasses add :func:`option` fields."""

    def validate(self, owner: str) -> None:
        """Raise :class:`InputError` for the first option that breaks its rule."""
        for f in fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            if check is None:
                continue
            if isinstance(check, tuple):
                ok, message = value in check, "must be one of " + ", ".join(map(str, check))
            else:
                rule, message = _RULES[check]
                ok = rule(value)
            if not ok:
                raise InputError(f"the '{f.name}' option of {owner}", message, value)

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def describe(cls) -> list[tuple[str, object, str]]:
        """``(name, default, doc)`` of every option, for help texts."""
        return [(f.name, f.default, f.metadata.get("doc", "")) for f in fields(cls)]


@dataclass(frozen=True)
class NoOptions(Options):
    """For methods without options."""
