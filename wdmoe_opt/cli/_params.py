"""Shared click parameter helpers."""

from __future__ import annotations

import json
import math

import click

from ..errors import InputError


def parse_assignments(pairs: tuple[str, ...], flag: str) -> dict:
    """``("tol=1e-9", "solver=ECOS")`` -> ``{"tol": 1e-09, "solver": "ECOS"}``
    (values parsed as JSON when they are JSON, else kept as strings)."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(flag, "must look like NAME=VALUE", pair)
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


class FiniteFloat(click.ParamType):
    """A finite number within ``[low, high]`` (``low`` excluded with ``low_open``): unlike
    ``click.FloatRange`` it refuses ``nan`` and ``inf``."""

    name = "number"

    def __init__(self, low: float = -math.inf, high: float = math.inf, low_open: bool = False):
        self.low, self.high, self.low_open = low, high, low_open

    def convert(self, value, param, ctx):
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        bad_low = x <= self.low if self.low_open else x < self.low
        if not math.isfinite(x) or bad_low or x > self.high:
            lo = "(" if self.low_open else "["
            self.fail(f"{value!r} is not a finite number in {lo}{self.low:g}, {self.high:g}]",
                      param, ctx)
        return x
