"""Typed, validated solver options (STYLE habit 4).

Each method declares a frozen dataclass deriving from :class:`Options`; a
field's ``metadata={"check": ...}`` names its rule. Validation happens once,
when the registry hands the options to the method, and raises one message
shape: ``the 'time_limit' option of p2/milp must be a positive number; got -1``.

A composed method (P1 = a P2 step then a P3 step) declares its sub-steps with
:func:`step_option`: validation turns the field's method name, ``{"method",
"options"}`` mapping or step into a validated :class:`~wdmoe_opt.registry.Step`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .errors import InputError

#: Integer options stay below this (iteration counts, seeds, sizes): a larger one is a
#: typing slip, and compiled code takes 32-bit counts.
INT_LIMIT = 2**31 - 1


_RULES = {
    "positive": (lambda v: _is_number(v) and v > 0, "must be a positive number"),
    "nonnegative": (lambda v: _is_number(v) and v >= 0, "must be a non-negative number"),
    "positive_int": (lambda v: _is_int(v) and v > 0,
                     f"must be a positive integer (at most {INT_LIMIT})"),
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
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= INT_LIMIT


def option(default, check: str | tuple, doc: str = ""):
    """Declare an option: ``check`` is a rule name of :data:`_RULES` or a tuple of
    allowed values."""
    return field(default=default, metadata={"check": check, "doc": doc})


def step_option(problem: str, default: str, doc: str = "", *, exact: bool = False):
    """Declare a sub-step: a method of ``problem`` with its options (a
    :class:`~wdmoe_opt.registry.Step`); ``exact`` requires an exact method."""
    return field(default=default, metadata={"step": problem, "exact": exact, "doc": doc})


@dataclass(frozen=True)
class Options:
    """Base of every method's options. Subclasses add :func:`option` and
    :func:`step_option` fields."""

    def validate(self, owner: str) -> None:
        """Raise :class:`InputError` for the first option that breaks its rule; build
        each sub-step (a name or mapping becomes a validated step)."""
        from .registry import make_step
        for f in fields(self):
            check = f.metadata.get("check")
            value = getattr(self, f.name)
            if "step" in f.metadata:
                field_name = f"the '{f.name}' option of {owner}"
                step = make_step(f.metadata["step"], value, field=field_name)
                if f.metadata["exact"] and not step.method.exact:
                    raise InputError(field_name, "must name an exact method", step.key)
                object.__setattr__(self, f.name, step)
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
        """Plain values (a sub-step as ``{"method": key, "options": {...}}``)."""
        return {f.name: (getattr(self, f.name).as_dict() if "step" in f.metadata
                         else getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def describe(cls) -> list[tuple[str, object, str]]:
        """``(name, default, doc)`` of every option, for help texts."""
        return [(f.name, f.default, f.metadata.get("doc", "")) for f in fields(cls)]

    @classmethod
    def step_fields(cls) -> dict[str, str]:
        """``{field name: problem}`` of the sub-steps this method composes."""
        return {f.name: f.metadata["step"] for f in fields(cls) if "step" in f.metadata}

    @classmethod
    def takes(cls, name: str) -> bool:
        return any(f.name == name for f in fields(cls))


@dataclass(frozen=True)
class NoOptions(Options):
    """For methods without options."""
