"""``wdmoe-solution/1`` files: JSON (any language, small results) or ``.npz`` (compact).

The ``.npz`` form follows the instance's (:mod:`wdmoe_opt.io.instance_io`): member
``header`` holds the JSON document (UTF-8 bytes) with ``selection`` replaced by the
string ``"npz:selection"`` and a ``selection_shape`` ``[I, J, E]`` added, and member
``selection`` holds the mask ``q[i, j, e]`` (eqs. 16-17) as ``uint8 [I, J, ceil(E/8)]``
bits, expert ``e`` in bit ``e % 8`` (least significant first) of byte ``e // 8``
(``numpy.packbits(q, axis=2, bitorder="little")``). Lossless, no pickle; the
conversions are single numpy calls in both directions.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Instance, Selection
from ..model.replicas import replica_lists
from ..model.selection import gc_paused, mask_from_lists
from ..problems import check_bandwidth
from ..solution import Solution
from .atomic import atomic_write_text
from .instance_io import parse_json, read_bytes
from .npz import is_npz, read_npz, write_npz

SCHEMA = "wdmoe-solution/1"
_NPZ_SELECTION = "selection"
_NPZ_REF = f"npz:{_NPZ_SELECTION}"

#: Fields a P4 solution carries at the top level of its document (SPEC §6), taken
#: from the solution's ``extra``.
P4_FIELDS = ("energy_j", "energy_lower_bound_j", "energy_gap", "layer_energy_j", "actions",
             "deviation_max", "deviation_budget", "deadline_s")


def _num(x):
    """JSON-safe float: ``inf``/``nan`` become ``null`` (JSON has neither)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def solution_to_dict(solution: Solution, include_selection: bool = True) -> dict:
    """The schema document of ``solution`` (SPEC §5), plus ``gap``, ``wlr_upper_bound``,
    ``expert_invocations``, ``support``, method-specific ``extra`` and, for a P5
    solution, ``placement`` ([I][E] device ids) and, when replicated, ``replicas``.

    Without ``include_selection`` the selection is the reference ``"npz:selection"``
    and ``selection_shape`` gives ``[I, J, E]`` (the ``.npz`` header).
    """
    extra = dict(solution.extra)
    lifted = {k: _jsonable(extra.pop(k, None)) for k in P4_FIELDS} \
        if solution.problem == "p4" else {}
    selection = solution.selection
    doc = lifted | {
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
        "selection": selection.kept_lists() if include_selection else _NPZ_REF,
        "wlr_total": _num(solution.wlr_total),
        "wlr_upper_bound": _num(solution.wlr_upper_bound),
        "retained_weight": _num(solution.retained_weight),
        "expert_invocations": solution.expert_invocations,
        "solve_time_s": solution.solve_time_s,
        "solver": _jsonable(dict(solution.solver)),
        "extra": _jsonable(extra),
        **({} if solution.placement is None else {"placement": solution.placement.tolist()}),
        **({} if solution.replicas is None else {"replicas": replica_lists(solution.replicas)}),
    }
    if not include_selection:
        doc["selection_shape"] = list(selection.shape)
    return doc


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
    """Write ``solution`` atomically: ``.npz`` suffix -> binary form, otherwise JSON."""
    path = Path(path)
    if path.suffix != ".npz":
        return atomic_write_text(path, solution_to_json(solution))
    bits = np.packbits(solution.selection.mask, axis=2, bitorder="little")
    return write_npz(path, solution_to_dict(solution, include_selection=False),
                     {_NPZ_SELECTION: bits})


def selection_from_document(doc: dict, instance: Instance,
                            field: str = "selection") -> Selection:
    """The ``selection`` of a solution document, either form (:func:`selection_mask`),
    as a :class:`Selection` of ``instance``'s shape; a bad entry is an :class:`InputError`."""
    return Selection(selection_mask(doc.get("selection"), instance.gating_weights.shape,
                                    f"{field}: selection"))


def bandwidth_from_document(doc: dict, instance: Instance, field: str = "bandwidth_hz"):
    """The ``bandwidth_hz`` of a solution document, validated (eqs. 20-21)."""
    raw = doc.get("bandwidth_hz")
    if not isinstance(raw, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw):
        raise InputError(f"{field}: bandwidth_hz", "must be a list of numbers", raw)
    return check_bandwidth(instance, raw, f"{field}: bandwidth_hz")


def read_solution_dict(path: str | os.PathLike) -> dict:
    """Read a solution document, JSON or ``.npz`` (by content; schema checked, contents
    checked by :mod:`wdmoe_opt.check`).

    From a ``.npz`` file, ``doc["selection"]`` is the read-only ``[I, J, E]`` boolean
    mask; from JSON it is the ``[I][J]`` lists. :func:`selection_mask` takes either.
    """
    path = Path(path)
    if is_npz(path, "solution file"):
        doc = _read_npz(path)
    else:
        with gc_paused():
            doc = parse_json(read_bytes(path, "solution file"), path)
    if doc.get("schema") != SCHEMA:
        raise InputError("schema", f"must be {SCHEMA!r}", doc.get("schema"))
    return doc


def _read_npz(path: Path) -> dict:
    header, arrays = read_npz(path, "wdmoe-solution", (_NPZ_SELECTION,))
    bits = arrays[_NPZ_SELECTION]
    doc = parse_json(header, path)
    shape = doc.get("selection_shape")
    if doc.get("selection") != _NPZ_REF or not (
            isinstance(shape, list) and len(shape) == 3
            and all(type(n) is int and n >= 1 for n in shape)):
        raise InputError("selection_shape", "must be [I, J, E] (positive integers) with "
                         f"selection {_NPZ_REF!r} in a .npz solution", shape)
    I, J, E = shape
    if bits.dtype != np.uint8 or bits.shape != (I, J, -(-E // 8)):
        raise InputError(f"{_NPZ_SELECTION} (npz member)",
                         f"must be uint8 bits of shape [{I}, {J}, {-(-E // 8)}]",
                         f"{bits.dtype} {bits.shape}")
    mask = np.unpackbits(bits, axis=2, count=E, bitorder="little").view(bool)
    mask.setflags(write=False)
    doc["selection"] = mask
    return doc


def selection_mask(raw, shape: tuple[int, int, int], field: str = "selection") -> np.ndarray:
    """The ``[I, J, E]`` boolean mask of a document's ``selection``: the mask itself
    (from ``.npz``, shape checked) or the ``[I][J]`` lists of kept expert ids (JSON).

    Raises
    ------
    InputError
        Naming the first malformed part (see :func:`~wdmoe_opt.model.selection.mask_from_lists`).
    """
    if isinstance(raw, np.ndarray):
        if raw.dtype != np.bool_ or raw.shape != tuple(shape):
            raise InputError(field, f"must be a boolean mask of shape {list(shape)}",
                             f"{raw.dtype} {list(raw.shape)}")
        return raw
    with gc_paused():
        return mask_from_lists(raw, shape, field)
