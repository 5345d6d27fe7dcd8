"""``wdmoe-solution/1`` files (JSON)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Instance, Selection
from ..problems import check_bandwidth
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
        "tolerance": solution.tolerance,
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


def selection_from_document(doc: dict, instance: Instance,
                            field: str = "selection") -> Selection:
    """The ``selection`` of a solution document (``[I][J]`` lists of expert ids) as a
    :class:`Selection` of ``instance``'s shape; a bad entry is an :class:`InputError`."""
    I, J, E = instance.gating_weights.shape
    lists = doc.get("selection")
    if not isinstance(lists, list) or len(lists) != I or any(
            not isinstance(layer, list) or len(layer) != J for layer in lists):
        raise InputError(f"{field}: selection", f"must be [{I}][{J}] lists of expert ids")
    counts = np.fromiter((len(kept) if isinstance(kept, list) else -1
                          for layer in lists for kept in layer), dtype=np.int64, count=I * J)
    if (counts < 0).any():
        n = int(np.argmax(counts < 0))
        raise InputError(f"{field}: selection[{n // J}][{n % J}]", "must be a list of expert "
                         "ids", lists[n // J][n % J])
    ids = [e for layer in lists for kept in layer for e in kept]
    flat = np.array(ids, dtype=object)
    ok = np.array([isinstance(e, int) and not isinstance(e, bool) and 0 <= e < E
                   for e in ids], dtype=bool)
    if not ok.all():
        n = int(np.searchsorted(np.cumsum(counts), int(np.argmin(ok)), side="right"))
        raise InputError(f"{field}: selection[{n // J}][{n % J}]",
                         f"holds an expert id outside 0..{E - 1}", flat[int(np.argmin(ok))])
    rows = np.repeat(np.arange(I * J), counts)
    mask = np.zeros((I * J, E), dtype=bool)
    mask[rows, flat.astype(np.int64)] = True
    return Selection(mask.reshape(I, J, E))


def bandwidth_from_document(doc: dict, instance: Instance, field: str = "bandwidth_hz"):
    """The ``bandwidth_hz`` of a solution document, validated (eqs. 20-21)."""
    raw = doc.get("bandwidth_hz")
    if not isinstance(raw, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
        raise InputError(f"{field}: bandwidth_hz", "must be a list of numbers", raw)
    return check_bandwidth(instance, raw, f"{field}: bandwidth_hz")


def read_solution_dict(path: str | os.PathLike) -> dict:
    """Read a solution document (schema checked; contents checked by :mod:`wdmoe_opt.check`)."""
    path = Path(path)
    doc = parse_json(read_bytes(path, "solution file"), path)
    if doc.get("schema") != SCHEMA:
        raise InputError("schema", f"must be {SCHEMA!r}", doc.get("schema"))
    return doc
