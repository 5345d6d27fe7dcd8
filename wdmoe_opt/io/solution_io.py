"""``wdmoe-solution/1`` files (JSON)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import InputError
from ..solution import Solution
from .atomic import atomic_write_text
from .instance_io import parse_json, read_bytes

SCHEMA = "wdmoe-solution/1"


def _num(x):
    """JSON-safe float: ``inf``/``nan`` become ``null`` (JSON has neither)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def solution_to_dict(solution: Solution) -> dict:
    """The schema document of ``solution`` (SPEC §5), plus ``gap``, ``wlr_upper_bound``,
    ``expert_invocations``, ``support``, method-specific ``extra`` and, for a P5
    solution, ``placement`` ([I][E] device ids)."""
    extra = dict(solution.extra)
    return {
        "schema": SCHEMA,
        "instance": {"name": solution.instance_name, "hash": solution.instance_hash},
        "problem": solution.problem,
        "method": solution.method,
        "support": extra.get("support"),
        "status": str(solution.status),
        "objective_s": _num(solution.objective_s),
        "lower_bound_s": _num(solution.lower_bound_s),
        "gap": _num(solution.gap),
        "layer_latency_s": [_num(x) for x in solution.layer_latency_s],
        "bandwidth_hz": [float(x) for x in solution.bandwidth_hz],
        "selection": solution.selection.kept_lists(),
        "wlr_total": _num(solution.wlr_total),
        "wlr_upper_bound": _num(solution.wlr_upper_bound),
        "retained_weight": _num(solution.retained_weight),
        "expert_invocations": solution.expert_invocations,
        "solve_time_s": solution.solve_time_s,
        "solver": _jsonable(dict(solution.solver)),
        "extra": _jsonable(extra),
        **({} if solution.placement is None else {"placement": solution.placement.tolist()}),
    }


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        return _num(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)


def solution_to_json(solution: Solution) -> str:
    return json.dumps(solution_to_dict(solution))


def write_solution(solution: Solution, path: str | os.PathLike) -> Path:
    """Write ``solution`` as JSON, atomically."""
    return atomic_write_text(path, solution_to_json(solution))


def read_solution_dict(path: str | os.PathLike) -> dict:
    """Read a solution document (schema checked; contents checked by :mod:`wdmoe_opt.check`)."""
    path = Path(path)
    doc = parse_json(read_bytes(path, "solution file"), path)
    if doc.get("schema") != SCHEMA:
        raise InputError("schema", f"must be {SCHEMA!r}", doc.get("schema"))
    return doc
