"""Shared click parameter helpers."""

from __future__ import annotations

import json

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
