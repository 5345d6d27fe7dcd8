"""``wdmoe-instance/1`` files: JSON (any language) or ``.npz`` (compact, lossless).

The ``.npz`` form is a zip of ``.npy`` members (readable from numpy, Julia,
MATLAB, Rust...): ``header`` holds the JSON document (as bytes) without the gating array,
and ``gating_weights`` holds it as float64, stored uncompressed (see
:func:`~wdmoe_opt.io.npz.write_npz`). Floats in JSON are written with Python's shortest round-trip
repr, so both forms are lossless.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model import Instance, ModelSizes, System
from ..model.instance import DEFAULT_ACTIVATION_FLOPS
from ..model.replicas import replica_lists
from ..model.similarity import Similarity
from .atomic import atomic_write_text
from .npz import is_npz, read_npz, write_npz

SCHEMA = "wdmoe-instance/1"
_NPZ_WEIGHTS = "gating_weights"


# -- writing ----------------------------------------------------------------------------
def instance_to_dict(instance: Instance, include_weights: bool = True) -> dict:
    """The schema document of ``instance`` (weights as nested lists if included)."""
    m, s = instance.model, instance.system
    model = {"layers": m.layers, "experts": m.experts, "top_k": m.top_k,
             "token_bits": m.token_bits, "token_flops": m.token_flops}
    if m.dims is not None:
        model.update(m.dims)
    if m.expert_bytes is not None:
        model["expert_bytes"] = m.expert_bytes
    devices = []
    for k in range(s.n_devices):
        d = {"compute_flops": float(s.compute_flops[k]), "tx_power_w": float(s.tx_power_w[k]),
             "gain_down": _device_gain(s.gain_down, k), "gain_up": _device_gain(s.gain_up, k)}
        if s.distance_m is not None:
            d["distance_m"] = float(s.distance_m[k])
        if s.compute_j_per_flop is not None:
            d["compute_j_per_flop"] = float(s.compute_j_per_flop[k])
        if s.capacity_experts is not None:
            cap = s.capacity_experts
            d["capacity_experts"] = int(cap[k]) if cap.ndim == 1 else cap[:, k].tolist()
        if s.capacity_bytes is not None:
            d["capacity_bytes"] = float(s.capacity_bytes[k])
        if s.local is not None:
            d["local"] = bool(s.local[k])
        devices.append(d)
    doc = {
        "schema": SCHEMA, "name": instance.name, "model": model,
        "system": {"total_bandwidth_hz": s.total_bandwidth_hz,
                   "noise_psd_w_per_hz": s.noise_psd_w_per_hz,
                   "bs_power_w": s.bs_power_w, "devices": devices},
    }
    if not instance.identity_placement:
        doc["placement"] = instance.placement.tolist()
    if instance.replicas is not None:
        doc["replicas"] = replica_lists(instance.replicas)
    if instance.route is not None:
        doc["route"] = instance.route.tolist()
    doc["gating"] = {"weights": instance.gating_weights.tolist() if include_weights
                     else f"npz:{_NPZ_WEIGHTS}"}
    sim = instance.similarity
    if sim is not None:
        doc["similarity"] = {"replace": sim.replace.tolist(), "skip": sim.skip.tolist(),
                             "source": sim.source}
        if sim.sensitivity is not None:
            doc["similarity"]["sensitivity"] = sim.sensitivity.tolist()
    if instance.deadlines_s is not None:
        doc["deadlines_s"] = instance.deadlines_s.tolist()
    doc["provenance"] = dict(instance.provenance)
    return doc


def _device_gain(g: np.ndarray, k: int):
    return float(g[k]) if g.ndim == 1 else g[:, k].tolist()


def write_instance(instance: Instance, path: str | os.PathLike) -> Path:
    """Write ``instance`` atomically: ``.npz`` suffix -> binary form, otherwise JSON."""
    path = Path(path)
    if path.suffix == ".npz":
        return write_npz(path, instance_to_dict(instance, include_weights=False),
                         {_NPZ_WEIGHTS: instance.gating_weights})
    return atomic_write_text(path, json.dumps(instance_to_dict(instance)))


# -- reading ----------------------------------------------------------------------------
def read_instance(path: str | os.PathLike) -> Instance:
    """Read and validate a ``wdmoe-instance/1`` file (JSON or ``.npz``, by content).

    The ``.npz`` gating array is read once into a read-only buffer that the
    :class:`Instance` keeps without copying.
    """
    path = Path(path)
    if is_npz(path, "instance file"):
        header, arrays = read_npz(path, "wdmoe-instance", (_NPZ_WEIGHTS,))
        return instance_from_dict(parse_json(header, path), arrays[_NPZ_WEIGHTS])
    return instance_from_dict(parse_json(read_bytes(path, "instance file"), path))


#: The largest file read (bytes); larger ones are refused before reading
#: (``WDMOE_OPT_MAX_FILE_BYTES`` overrides it).
MAX_FILE_BYTES = int(os.environ.get("WDMOE_OPT_MAX_FILE_BYTES", 4 << 30))

def read_bytes(path: Path, what: str) -> bytes:
    """The file's bytes, or an :class:`InputError` naming ``what`` is wrong with it: it is
    missing, not a regular file (``/dev/zero``, a folder) or over :data:`MAX_FILE_BYTES`."""
    try:
        info = path.stat()
        if not path.is_file():
            raise InputError(what, "is not a regular file", str(path))
        if info.st_size > MAX_FILE_BYTES:
            raise InputError(what, f"is larger than the limit of {MAX_FILE_BYTES:,} bytes "
                             f"({info.st_size:,}; set WDMOE_OPT_MAX_FILE_BYTES)", str(path))
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(what, "does not exist", str(path)) from None
    except OSError as exc:
        raise InputError(what, f"cannot be read ({exc.strerror})", str(path)) from None


def _no_duplicate_keys(pairs: list) -> dict:
    doc = {}
    for key, value in pairs:
        if key in doc:
            raise InputError(f"key {key!r}", "appears twice in one JSON object")
        doc[key] = value
    return doc


def parse_json(raw: bytes, path: Path) -> dict:
    """A JSON object from ``raw``; one :class:`InputError` for anything else (bad
    UTF-8, bad JSON, a repeated key, nesting deeper than the parser's recursion
    limit, an integer too long to read)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(str(path), "is neither JSON nor a .npz file") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise InputError(str(path), f"is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                         f"{exc.msg})") from None
    except InputError as exc:
        raise InputError(str(path), f"is not valid here: {exc}") from None
    except RecursionError:
        raise InputError(str(path), "nests JSON too deeply to read") from None
    except ValueError as exc:               # e.g. an integer over Python's digit limit
        raise InputError(str(path), f"holds a value that cannot be read ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(str(path), "must hold a JSON object")
    return doc


def _get(d: dict, key: str, path: str, required: bool = True):
    if not isinstance(d, dict):
        raise InputError(path, "must be a JSON object")
    if key not in d:
        if required:
            raise InputError(f"{path}.{key}" if path else key, "is required")
        return None
    return d[key]


def instance_from_dict(doc: dict, weights: np.ndarray | None = None) -> Instance:
    """Build and validate an :class:`Instance` from a schema document."""
    schema = _get(doc, "schema", "")
    if schema != SCHEMA:
        raise InputError("schema", f"must be {SCHEMA!r}", schema)
    model = _model_from_dict(_get(doc, "model", ""))
    system = _get(doc, "system", "")
    devices = _get(system, "devices", "system")
    if not isinstance(devices, list) or not devices:
        raise InputError("system.devices", "must be a non-empty list", devices)
    cols = {}
    for name in ("compute_flops", "tx_power_w", "gain_down", "gain_up", "distance_m",
                 "compute_j_per_flop", "capacity_experts", "capacity_bytes"):
        required = name not in ("distance_m", "compute_j_per_flop", "capacity_experts",
                                "capacity_bytes")
        vals = [_get(d, name, f"system.devices[{k}]", required) for k, d in enumerate(devices)]
        if all(v is None for v in vals):
            cols[name] = None
            continue
        if any(v is None for v in vals):
            k = vals.index(None)
            raise InputError(f"system.devices[{k}].{name}", "is given for some devices only")
        cols[name] = _device_column(vals, name)
    local = [d.get("local") for d in devices]
    if any(v is not None for v in local):
        if any(v is None for v in local):
            raise InputError(f"system.devices[{local.index(None)}].local",
                             "is given for some devices only")
        cols["local"] = local
    sys_obj = System(
        total_bandwidth_hz=_number(_get(system, "total_bandwidth_hz", "system"),
                                   "system.total_bandwidth_hz"),
        noise_psd_w_per_hz=_number(_get(system, "noise_psd_w_per_hz", "system"),
                                   "system.noise_psd_w_per_hz"),
        bs_power_w=_number(_get(system, "bs_power_w", "system"), "system.bs_power_w"), **cols)
    gating = _get(doc, "gating", "")
    w = _get(gating, "weights", "gating") if weights is None else weights
    if isinstance(w, str):
        raise InputError("gating.weights", "refers to a binary array but the file is JSON", w)
    name = _get(doc, "name", "")
    provenance = doc.get("provenance") or {}
    if not isinstance(provenance, dict):
        raise InputError("provenance", "must be a JSON object", provenance)
    return Instance(name=name, model=model, system=sys_obj, gating_weights=w,
                    placement=doc.get("placement"), provenance=provenance,
                    similarity=_similarity_from_dict(doc.get("similarity")),
                    deadlines_s=doc.get("deadlines_s"), replicas=doc.get("replicas"),
                    route=doc.get("route"))


def _similarity_from_dict(block) -> Similarity | None:
    if block is None:
        return None
    if not isinstance(block, dict):
        raise InputError("similarity", "must be a JSON object", block)
    unknown = sorted(set(block) - {"replace", "skip", "source", "sensitivity"})
    if unknown:
        raise InputError(f"similarity.{unknown[0]}", "is not a field of the similarity block")
    return Similarity(replace=_get(block, "replace", "similarity"),
                      skip=_get(block, "skip", "similarity"),
                      source=block.get("source", ""), sensitivity=block.get("sensitivity"))


def _number(v, path: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InputError(path, "must be a number", v)
    return float(v)


def _device_column(vals: list, name: str) -> np.ndarray:
    nested = [isinstance(v, list) for v in vals]
    if any(nested) and not all(nested):
        raise InputError(f"system.devices[*].{name}",
                         "must be a number for every device or a per-layer list for every device")
    for k, v in enumerate(vals):
        items = v if isinstance(v, list) else [v]
        for x in items:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise InputError(f"system.devices[{k}].{name}", "must be a number", x)
    if all(nested):
        lengths = {len(v) for v in vals}
        if len(lengths) != 1:
            raise InputError(f"system.devices[*].{name}",
                             "per-layer lists must have the same length", sorted(lengths))
        return np.asarray(vals, dtype=np.float64).T  # [I, U]
    return np.asarray(vals, dtype=np.float64)


def _model_from_dict(m: dict) -> ModelSizes:
    sizes = _model_sizes_from_dict(m)
    if "expert_bytes" not in m:
        return sizes
    return dataclasses.replace(sizes, expert_bytes=_number(m["expert_bytes"],
                                                           "model.expert_bytes"))


def _model_sizes_from_dict(m: dict) -> ModelSizes:
    layers = _get(m, "layers", "model")
    experts = _get(m, "experts", "model")
    top_k = _get(m, "top_k", "model")
    if "token_bits" in m or "token_flops" in m:
        dims = {k: m[k] for k in ("hidden_dim", "ffn_hidden_dim", "precision_bits",
                                  "activation_flops") if k in m}
        return ModelSizes(layers, experts, top_k,
                          _number(_get(m, "token_bits", "model"), "model.token_bits"),
                          _number(_get(m, "token_flops", "model"), "model.token_flops"),
                          dims=dims or None)
    if "hidden_dim" not in m:
        raise InputError("model", "needs token_bits and token_flops, or hidden_dim and "
                         "ffn_hidden_dim")
    return ModelSizes.from_dims(layers, experts, top_k, _get(m, "hidden_dim", "model"),
                                _get(m, "ffn_hidden_dim", "model"),
                                m.get("precision_bits", 16),
                                m.get("activation_flops", DEFAULT_ACTIVATION_FLOPS))
