"""The WDMoE instance: model sizes, devices and channels, placement, gating weights.

Immutable and validated at the door (STYLE habit 5): every array is a read-only
float64/int64 copy, and every error names the path of the field as it appears
in the ``wdmoe-instance/1`` file (``system.devices[3].tx_power_w``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

import numpy as np

from ..errors import InputError
from .replicas import copies_per_device, replicas_array, route_array
from .similarity import Similarity, deadlines_array

#: Tolerance on ``sum_e w[i, j, e] = 1`` for recorded softmax outputs (float32 round-off).
WEIGHT_SUM_TOL = 1e-4

#: FLOPs of the activation per hidden element (``eta`` of eq. 5), SiLU = x * sigmoid(x):
#: negate, exp, add, divide. The paper leaves it open; see docs/model.md.
DEFAULT_ACTIVATION_FLOPS = 4.0


def token_bits_from_dims(hidden_dim: int, precision_bits: float) -> float:
    """Eq. (4): ``L_comm = epsilon * m`` bits per token embedding."""
    return float(precision_bits) * float(hidden_dim)


def token_flops_from_dims(
    hidden_dim: int, ffn_hidden_dim: int, activation_flops: float = DEFAULT_ACTIVATION_FLOPS
) -> float:
    """Eq. (5), literally: ``4 m m_h + 2 m_h m + eta m_h + m_h`` FLOPs per token."""
    m, mh = float(hidden_dim), float(ffn_hidden_dim)
    return 4 * m * mh + 2 * mh * m + float(activation_flops) * mh + mh


def _positive_int(value, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(path, "must be a positive integer", value)
    return int(value)


def _positive_float(value, path: str, allow_zero: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(path, "must be a number", value) from None
    if not np.isfinite(x) or x < 0 or (x == 0 and not allow_zero):
        raise InputError(path, "must be a finite " + ("non-negative" if allow_zero else "positive")
                         + " number", value)
    return x


def _readonly(a: np.ndarray, private: bool = False) -> np.ndarray:
    """A read-only array with the values of ``a``, copying only when needed.

    No copy when ``a`` is ``private`` (just built from the caller's value, so no one
    else holds it) or already frozen: read-only down to a buffer numpy owns (an
    instance's own array, or one a reader froze). A long recording's gating array
    then exists once in memory, through :meth:`Instance.replace` too.
    """
    if not (private or _frozen(a)):
        a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _fresh(a: np.ndarray, given) -> bool:
    """Whether ``a``, converted from the caller's ``given``, is a new array (private)."""
    return a is not given and not (isinstance(given, np.ndarray)
                                   and np.may_share_memory(a, given))


def _frozen(a) -> bool:
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        if a.base is None:
            return True
        a = a.base
    return False


@dataclass(frozen=True, eq=False)
class ModelSizes:
    """Sizes of the MoE model: ``I`` layers, ``E`` experts per layer, router Top-K,
    bits per token embedding (eq. 4) and FLOPs per token per expert (eq. 5).

    ``dims`` keeps the model dimensions the sizes came from, if any
    (``hidden_dim``, ``ffn_hidden_dim``, ``precision_bits``, ``activation_flops``).
    ``expert_bytes`` (optional) is the memory one expert takes (P5's byte capacities);
    absent, :attr:`expert_size_bytes` derives it from ``dims``.
    """

    layers: int
    experts: int
    top_k: int
    token_bits: float
    token_flops: float
    dims: Mapping[str, float] | None = None
    expert_bytes: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "layers", _positive_int(self.layers, "model.layers"))
        object.__setattr__(self, "experts", _positive_int(self.experts, "model.experts"))
        k = _positive_int(self.top_k, "model.top_k")
        if k > self.experts:
            raise InputError("model.top_k", f"must be at most model.experts = {self.experts}", k)
        object.__setattr__(self, "top_k", k)
        object.__setattr__(self, "token_bits", _positive_float(self.token_bits, "model.token_bits"))
        object.__setattr__(self, "token_flops",
                           _positive_float(self.token_flops, "model.token_flops"))
        if self.dims is not None:
            object.__setattr__(self, "dims", MappingProxyType(dict(self.dims)))
        if self.expert_bytes is not None:
            object.__setattr__(self, "expert_bytes",
                               _positive_float(self.expert_bytes, "model.expert_bytes"))

    @property
    def expert_size_bytes(self) -> float | None:
        """Bytes of one expert: ``expert_bytes`` if given, else the SwiGLU FFN's
        ``3 m m_h`` weights (the three matrices behind eq. 5's ``4 m m_h + 2 m_h m``
        FLOPs) at ``precision_bits / 8`` bytes each; ``None`` without dims."""
        if self.expert_bytes is not None:
            return self.expert_bytes
        d = self.dims
        if d is None or "hidden_dim" not in d or "ffn_hidden_dim" not in d:
            return None
        return 3.0 * d["hidden_dim"] * d["ffn_hidden_dim"] * d.get("precision_bits", 16) / 8

    @classmethod
    def from_dims(cls, layers: int, experts: int, top_k: int, hidden_dim: int,
                  ffn_hidden_dim: int, precision_bits: float = 16,
                  activation_flops: float = DEFAULT_ACTIVATION_FLOPS) -> ModelSizes:
        """Sizes from model dimensions through eqs. (4) and (5)."""
        hidden_dim = _positive_int(hidden_dim, "model.hidden_dim")
        ffn_hidden_dim = _positive_int(ffn_hidden_dim, "model.ffn_hidden_dim")
        precision_bits = _positive_float(precision_bits, "model.precision_bits")
        activation_flops = _positive_float(activation_flops, "model.activation_flops",
                                           allow_zero=True)
        return cls(layers, experts, top_k,
                   token_bits_from_dims(hidden_dim, precision_bits),
                   token_flops_from_dims(hidden_dim, ffn_hidden_dim, activation_flops),
                   dims={"hidden_dim": hidden_dim, "ffn_hidden_dim": ffn_hidden_dim,
                         "precision_bits": precision_bits,
                         "activation_flops": activation_flops})


_DEVICE_ARRAYS = ("compute_flops", "tx_power_w", "gain_down", "gain_up")


@dataclass(frozen=True, eq=False)
class System:
    """The wireless system: BS, noise, total bandwidth and ``U`` devices.

    Device arrays are indexed by device ``k``. Gains are ``[U]`` (slow fading) or
    ``[I, U]`` (fast fading: one gain per layer). ``compute_j_per_flop`` is the
    optional device compute energy (SiftMoE-style objectives); zero if absent.
    ``capacity_experts`` (optional, ``[U]`` or ``[I, U]`` non-negative integers) is the
    most experts of one layer a device may host (problem P5, SPEC §7); absent = no limit.
    ``capacity_bytes`` (optional, ``[U]`` non-negative) is the memory a device has for
    experts of all layers (:meth:`Instance.capacity_limit` turns it into experts per layer).
    ``local`` marks devices with no wireless link (SPEC §6: experts held by the hub
    itself): no communication time or energy; all false if absent.
    """

    total_bandwidth_hz: float
    noise_psd_w_per_hz: float
    bs_power_w: float
    compute_flops: np.ndarray
    tx_power_w: np.ndarray
    gain_down: np.ndarray
    gain_up: np.ndarray
    distance_m: np.ndarray | None = None
    compute_j_per_flop: np.ndarray | None = None
    capacity_experts: np.ndarray | None = None
    local: np.ndarray | None = None
    capacity_bytes: np.ndarray | None = None

    def __post_init__(self):
        def set_(name, value):
            object.__setattr__(self, name, value)

        set_("total_bandwidth_hz",
             _positive_float(self.total_bandwidth_hz, "system.total_bandwidth_hz"))
        set_("noise_psd_w_per_hz",
             _positive_float(self.noise_psd_w_per_hz, "system.noise_psd_w_per_hz"))
        set_("bs_power_w", _positive_float(self.bs_power_w, "system.bs_power_w"))
        n = None
        for name in _DEVICE_ARRAYS + ("distance_m", "compute_j_per_flop", "capacity_bytes"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = _device_array(value, name)
            if n is None:
                n = arr.shape[-1]
            elif arr.shape[-1] != n:
                raise InputError(f"system.devices[*].{name}",
                                 f"must have one value per device ({n} devices)", arr.shape[-1])
            allow_zero = name in ("compute_j_per_flop", "capacity_bytes")
            _check_device_values(arr, name, allow_zero)
            if arr.ndim == 2 and name not in ("gain_down", "gain_up"):
                raise InputError(f"system.devices[*].{name}",
                                 "must be one number per device", arr.shape)
            set_(name, _readonly(arr))
        if n is None or n < 1:
            raise InputError("system.devices", "must list at least one device", n)
        if self.capacity_experts is not None:
            set_("capacity_experts", _readonly(capacity_array(self.capacity_experts, n)))
        if self.local is not None:
            set_("local", _readonly(_local_array(self.local, n)))
        self._check_link_budget()

    @property
    def local_mask(self) -> np.ndarray:
        """``[U]`` bool: devices without a wireless link (all false if ``local`` is absent)."""
        if self.local is None:
            return np.zeros(self.n_devices, dtype=bool)
        return self.local

    def _check_link_budget(self) -> None:
        """``P g / N0`` (eqs. 2-3) must be finite: a power, gain or noise density that
        overflows it would give an infinite rate, a wrong zero communication time."""
        for name, power, gain in (("bs_power_w", self.bs_power_w, "gain_down"),
                                  ("devices[*].tx_power_w", self.tx_power_w, "gain_up")):
            with np.errstate(over="ignore"):
                budget = power * np.atleast_2d(getattr(self, gain)) / self.noise_psd_w_per_hz
            if not np.isfinite(budget).all():
                raise InputError(f"system.{name}", f"with system.devices[*].{gain} and "
                                 "system.noise_psd_w_per_hz overflows the link budget P g / N0",
                                 float(np.max(power)))

    @property
    def n_devices(self) -> int:
        return int(self.compute_flops.shape[0])

    @property
    def fast_fading(self) -> bool:
        return self.gain_down.ndim == 2 or self.gain_up.ndim == 2


def _device_array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"system.devices[*].{name}", "must be numbers", value) from None
    if arr.ndim not in (1, 2):
        raise InputError(f"system.devices[*].{name}", "must be [U] or [I][U]", arr.shape)
    return arr


def capacity_array(value, n: int) -> np.ndarray:
    """``capacity_experts`` as int64 ``[U]`` or ``[I, U]``: non-negative integers."""
    path = "system.devices[*].capacity_experts"
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(path, "must be integers", value) from None
    if raw.ndim not in (1, 2) or raw.shape[-1] != n:
        raise InputError(path, f"must be [U] or [I][U] with one value per device ({n} devices)",
                         raw.shape)
    if raw.dtype.kind not in "iuf":
        raise InputError(path, "must be integers", raw.dtype.name)
    bad = raw < 0
    if raw.dtype.kind == "f":
        bad |= ~np.isfinite(raw) | (np.mod(raw, 1) != 0)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = f"system.devices[{int(idx[-1])}].capacity_experts" + (
            f"[{int(idx[0])}]" if raw.ndim == 2 else "")
        raise InputError(where, "must be a non-negative integer", raw[tuple(idx)].item())
    return raw.astype(np.int64)
def _local_array(value, n: int) -> np.ndarray:
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is not None:
        k = next((k for k, v in enumerate(items) if not isinstance(v, (bool, np.bool_))), None)
        if k is not None:
            raise InputError(f"system.devices[{k}].local", "must be true or false", items[k])
    raw = np.asarray(value)
    if raw.shape != (n,) or raw.dtype != np.bool_:
        raise InputError("system.devices[*].local", f"must be one flag per device ({n} devices)",
                         raw.shape)
    return raw


def _check_device_values(arr: np.ndarray, name: str, allow_zero: bool) -> None:
    bad = ~np.isfinite(arr) | (arr < 0) | ((arr == 0) & (not allow_zero))
    if bad.any():
        idx = np.argwhere(bad)[0]
        k = int(idx[-1])
        path = f"system.devices[{k}].{name}" + (f"[{int(idx[0])}]" if arr.ndim == 2 else "")
        kind = "non-negative" if allow_zero else "positive"
        raise InputError(path, f"must be a finite {kind} number", float(arr[tuple(idx)]))


@dataclass(frozen=True, eq=False)
class Instance:
    """One WDMoE instance (SPEC §1): what every problem and solver reads.

    Parameters
    ----------
    name : str
    model : ModelSizes
    system : System
    gating_weights : array [I, J, E]
        Router probabilities of every token for every expert (softmax over E).
    placement : array [I, E] of device ids, optional
        ``placement[i, e]`` hosts expert ``e`` of layer ``i``; identity if omitted
        (requires ``E == U``).
    provenance : mapping
        Generator, seed, source: carried along, not part of the content hash.
    similarity : Similarity, optional
        Deviation tables for problem P4 (SPEC §6).
    deadlines_s : float or array [I], optional
        Per-layer deadlines for problem P4 (one number applies to every layer).
    replicas : [I][E] lists of device ids, optional
        Replicated experts (P5, SPEC §7; :mod:`wdmoe_opt.model.replicas`): every device
        holding a copy of expert ``e`` of layer ``i``, the first being
        ``placement[i][e]`` (the placement is read from the first entries when
        omitted). Stored as an ``[I, E, R]`` array padded with -1; tokens are routed
        to the copies by the split rule; each copy uses capacity on its device.
    route : array [I, J, E] of device ids, optional
        With ``replicas``: the copy serving pair ``(i, j, e)`` where set (-1: the split
        rule decides), e.g. the optimal route of ``p5/milp``.
    """

    name: str
    model: ModelSizes
    system: System
    gating_weights: np.ndarray
    placement: np.ndarray | None = None
    provenance: Mapping = field(default_factory=dict)
    similarity: Similarity | None = None
    deadlines_s: np.ndarray | None = None
    replicas: np.ndarray | None = None
    route: np.ndarray | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise InputError("name", "must be a non-empty string", self.name)
        I, E, U = self.model.layers, self.model.experts, self.system.n_devices
        w = _gating_array(self.gating_weights, I, E)
        object.__setattr__(self, "gating_weights",
                           _readonly(w, private=_fresh(w, self.gating_weights)))
        for gname in ("gain_down", "gain_up"):
            g = getattr(self.system, gname)
            if g.ndim == 2 and g.shape[0] != I:
                raise InputError(f"system.devices[*].{gname}",
                                 f"per-layer gains need one row per layer ({I})", g.shape)
        if self.placement is None and self.replicas is not None:   # the primary copies
            object.__setattr__(self, "placement",
                               replicas_array(self.replicas, None, I, E, U)[:, :, 0])
        if self.placement is None:
            if E != U:
                raise InputError("placement", f"is required when experts ({E}) != devices ({U})")
            pl = np.tile(np.arange(U, dtype=np.int64), (I, 1))
        else:
            pl = placement_array(self.placement, I, E, U)
        object.__setattr__(self, "placement", _readonly(pl))
        if self.replicas is not None:
            object.__setattr__(self, "replicas",
                               _readonly(replicas_array(self.replicas, pl, I, E, U)))
        if self.route is not None:
            if self.replicas is None:
                raise InputError("route", "needs replicas (the copies it routes to)")
            object.__setattr__(self, "route", _readonly(
                route_array(self.route, self.replicas, self.gating_weights.shape[1])))
        if self.system.capacity_bytes is not None and self.model.expert_size_bytes is None:
            raise InputError("model.expert_bytes", "is required (or model.hidden_dim and "
                             "ffn_hidden_dim) when system.devices[*].capacity_bytes is given")
        own = self.system.capacity_experts
        if own is not None and own.ndim == 2 and own.shape[0] != I:
            raise InputError("system.devices[*].capacity_experts",
                             f"per-layer capacities need one row per layer ({I})", own.shape)
        cap = self.capacity_limit
        if cap is not None:
            _check_capacity(pl, cap, U, self.replicas)
        object.__setattr__(self, "provenance", MappingProxyType(dict(self.provenance)))
        if self.similarity is not None:
            if not isinstance(self.similarity, Similarity):
                raise InputError("similarity", "must be a Similarity block", self.similarity)
            object.__setattr__(self, "similarity", self.similarity.validated(I, E))
        if self.deadlines_s is not None:
            object.__setattr__(self, "deadlines_s", deadlines_array(self.deadlines_s, I))

    # -- sizes -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.model.layers

    @property
    def n_tokens(self) -> int:
        return int(self.gating_weights.shape[1])

    @property
    def n_experts(self) -> int:
        return self.model.experts

    @property
    def n_devices(self) -> int:
        return self.system.n_devices

    @cached_property
    def identity_placement(self) -> bool:
        """True for the paper's setting: expert ``k`` of every layer on device ``k``
        (and no replicated experts)."""
        return self.replicas is None and self.n_experts == self.n_devices and bool(
            (self.placement == np.arange(self.n_devices)).all())

    # -- channels, per layer -------------------------------------------------------------
    @cached_property
    def gain_down_per_layer(self) -> np.ndarray:
        """Downlink gains ``[I, U]`` (a broadcast view for slow fading)."""
        return _per_layer(self.system.gain_down, self.n_layers)

    @cached_property
    def gain_up_per_layer(self) -> np.ndarray:
        """Uplink gains ``[I, U]``."""
        return _per_layer(self.system.gain_up, self.n_layers)

    @cached_property
    def received_power_w(self) -> np.ndarray:
        """``[2, R, U]`` read-only received signal powers ``P g``, the ``S`` of eqs.
        (2)-(3): downlink (base station power), then uplink (each device's power);
        ``R = I`` under fast fading, else 1 (the same in every layer)."""
        s = self.system
        down, up = np.broadcast_arrays(s.bs_power_w * np.atleast_2d(s.gain_down),
                                       s.tx_power_w * np.atleast_2d(s.gain_up))
        return _readonly(np.stack([down, up]), private=True)

    @cached_property
    def router_topk_mask(self) -> np.ndarray:
        """``[I, J, E]`` read-only mask of every token's router Top-K (ties to the lower id)."""
        return _readonly(topk_mask(self.gating_weights, self.model.top_k), private=True)

    @cached_property
    def router_topk_experts(self) -> np.ndarray:
        """``[I, J, K]`` read-only int64: each token's router Top-K expert ids, ascending."""
        I, J, E = self.gating_weights.shape
        ids = np.flatnonzero(self.router_topk_mask) % E
        return _readonly(ids.reshape(I, J, self.model.top_k), private=True)

    @cached_property
    def router_topk_weights(self) -> np.ndarray:
        """``[I, J, K]`` read-only gate weights of :attr:`router_topk_experts`."""
        return _readonly(np.take_along_axis(self.gating_weights, self.router_topk_experts,
                                            axis=2), private=True)

    @cached_property
    def topk_weight_total(self) -> float:
        """``sum`` of every token's router Top-K weights (the retained-weight denominator)."""
        return float(np.einsum("ije,ije->", self.gating_weights, self.router_topk_mask))

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the content (model, system, placement, gating); not name/provenance.

        Computed once per instance and streamed: each (contiguous, little-endian)
        array is fed to the hash through its buffer, never copied to ``bytes``.
        """
        h = hashlib.sha256()
        h.update(json.dumps(self._content_header(), sort_keys=True).encode())
        for arr in (self.system.gain_down, self.system.gain_up, self.system.compute_flops,
                    self.system.tx_power_w, self.placement.astype("<i8"),
                    self.gating_weights):
            h.update(str(arr.shape).encode())
            h.update(_le_bytes(arr))
        for opt in (self.system.distance_m, self.system.compute_j_per_flop):
            h.update(b"-" if opt is None else _le_bytes(np.asarray(opt, "<f8")))
        # the P4 blocks: hashed only when present, so older instances keep their hash
        sim = self.similarity
        optional = {"local": self.system.local, "deadlines_s": self.deadlines_s,
                    "similarity.replace": None if sim is None else sim.replace,
                    "similarity.skip": None if sim is None else sim.skip,
                    "similarity.sensitivity": None if sim is None else sim.sensitivity}
        for name, arr in optional.items():
            if arr is not None:
                h.update(name.encode())
                h.update(_le_bytes(np.asarray(arr, "<f8")))
        if sim is not None:
            h.update(b"similarity.source" + sim.source.encode())
        cap = self.system.capacity_experts
        if cap is not None:   # P5's capacities: hashed only when present, as the P4 blocks
            h.update(b"capacity_experts" + str(cap.shape).encode())
            h.update(_le_bytes(np.asarray(cap, "<i8")))
        if self.replicas is not None:   # hashed only when present, as the P4 blocks
            h.update(b"replicas" + str(self.replicas.shape).encode())
            h.update(_le_bytes(np.asarray(self.replicas, "<i8")))
        if self.route is not None:
            h.update(b"route")
            h.update(_le_bytes(np.asarray(self.route, "<i8")))
        if self.system.capacity_bytes is not None:   # with the expert size it is read with
            h.update(b"capacity_bytes")
            h.update(_le_bytes(np.asarray(self.system.capacity_bytes, "<f8")))
            h.update(b"expert_bytes" + repr(self.model.expert_size_bytes).encode())
        return "sha256:" + h.hexdigest()

    @property
    def capacity_limit(self) -> np.ndarray | None:
        """``[I, U]`` int: the most experts of each layer each device may host, or
        ``None`` without capacities (P5, SPEC §7).

        The minimum of ``capacity_experts`` and, with ``capacity_bytes``, the byte
        budget split evenly over the layers: ``floor(capacity_bytes / (I expert_bytes))``
        (a device may then hold the same number of experts in every layer).
        """
        own, mem = self.system.capacity_experts, self.system.capacity_bytes
        if own is None and mem is None:
            return None
        I = self.n_layers
        lim = None if own is None else capacity_per_layer(own, I)
        if mem is not None:
            per_layer = np.floor(mem / (I * self.model.expert_size_bytes)).astype(np.int64)
            by_bytes = np.broadcast_to(per_layer, (I, per_layer.shape[0]))
            lim = by_bytes if lim is None else np.minimum(lim, by_bytes)
        return lim

    def _content_header(self) -> dict:
        m, s = self.model, self.system
        return {"layers": m.layers, "experts": m.experts, "top_k": m.top_k,
                "token_bits": repr(m.token_bits), "token_flops": repr(m.token_flops),
                "total_bandwidth_hz": repr(s.total_bandwidth_hz),
                "noise_psd_w_per_hz": repr(s.noise_psd_w_per_hz),
                "bs_power_w": repr(s.bs_power_w)}

    def replace(self, **changes) -> Instance:
        """A validated copy with some fields changed (``dataclasses.replace``)."""
        from dataclasses import replace
        return replace(self, **changes)

    def with_system(self, **changes) -> Instance:
        """A copy whose :class:`System` has some fields changed (e.g. total bandwidth)."""
        from dataclasses import replace
        return replace(self, system=replace(self.system, **changes))


def _le_bytes(arr: np.ndarray) -> memoryview:
    """The bytes of ``arr`` in C order, little-endian: a view when it already is."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return memoryview(a.reshape(-1).view(np.uint8))


#: Rows of ``[..., E]`` arrays handled at once by the blockwise passes
#: (bounds their temporaries to a few MB whatever the number of tokens).
BLOCK_ROWS = 1 << 16


def small_int(n: int) -> np.dtype:
    """The smallest signed integer type holding ``-n..n``: per-token expert ids,
    device ids and counts, so that a long batch's ``[I, J, K]`` index arrays stay a
    fraction of its gating array."""
    return np.min_scalar_type(-int(n))


def row_blocks(a: np.ndarray):
    """``(start, rows)``: ``a`` as ``[-1, E]`` rows (a view), in blocks of
    :data:`BLOCK_ROWS`, so a pass over every token's row keeps its temporaries small."""
    rows = a.reshape(-1, a.shape[-1])
    for start in range(0, rows.shape[0], BLOCK_ROWS):
        yield start, rows[start:start + BLOCK_ROWS]


def _per_layer(gain: np.ndarray, layers: int) -> np.ndarray:
    if gain.ndim == 2:
        return gain
    return np.broadcast_to(gain, (layers, gain.shape[0]))


def _gating_array(value, I: int, E: int) -> np.ndarray:
    try:
        w = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("gating.weights", "must be an [I][J][E] array of numbers") from None
    if w.ndim != 3 or w.shape[0] != I or w.shape[2] != E or w.shape[1] < 1:
        raise InputError("gating.weights",
                         f"must have shape [layers={I}][tokens>=1][experts={E}]", w.shape)
    for start, rows in row_blocks(w):   # blockwise: temporaries stay small
        bad = ~np.isfinite(rows) | (rows < 0) | (rows > 1 + WEIGHT_SUM_TOL)
        if bad.any():
            n, e = (int(x) for x in np.argwhere(bad)[0])
            i, j = divmod(start + n, w.shape[1])
            raise InputError(f"gating.weights[{i}][{j}][{e}]",
                             "must be a probability in [0, 1]", float(rows[n, e]))
        sums = rows.sum(axis=1)
        off = np.abs(sums - 1.0) > WEIGHT_SUM_TOL
        if off.any():
            n = int(np.argmax(off))
            i, j = divmod(start + n, w.shape[1])
            raise InputError(f"gating.weights[{i}][{j}]",
                             "must sum to 1 over experts (router softmax)", float(sums[n]))
    return w


def placement_array(value, I: int, E: int, U: int) -> np.ndarray:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError("placement", "must be an [I][E] array of device ids") from None
    if raw.shape != (I, E):
        raise InputError("placement", f"must have shape [layers={I}][experts={E}]", raw.shape)
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f"
                                           and np.all(np.mod(raw, 1) == 0)):
        raise InputError("placement", "must hold integer device ids", raw.dtype.name)
    bad = (raw < 0) | (raw >= U)            # before the cast: 1e308 stays 1e308
    if bad.any():
        i, e = (int(x) for x in np.argwhere(bad)[0])
        value = raw[i, e].item()
        raise InputError(f"placement[{i}][{e}]",
                         f"names a missing device (devices are 0..{U - 1})", value)
    return raw.astype(np.int64)


def capacity_per_layer(capacity: np.ndarray, layers: int) -> np.ndarray:
    """``capacity_experts`` (``[U]`` or ``[I, U]``) as ``[I, U]`` (a broadcast view)."""
    return capacity if capacity.ndim == 2 else np.broadcast_to(capacity,
                                                               (layers, capacity.shape[0]))


def experts_per_device(placement: np.ndarray, devices: int) -> np.ndarray:
    """``[I, U]``: how many experts of each layer each device hosts under ``placement``."""
    I = placement.shape[0]
    rows = np.repeat(np.arange(I) * devices, placement.shape[1]) + placement.ravel()
    return np.bincount(rows, minlength=I * devices).reshape(I, devices)


def _check_capacity(placement: np.ndarray, capacity: np.ndarray, U: int,
                    replicas: np.ndarray | None = None) -> None:
    """``placement`` (every copy of ``replicas`` when given) within ``capacity``
    (``[I, U]``, :attr:`Instance.capacity_limit`)."""
    hosted = (experts_per_device(placement, U) if replicas is None
              else copies_per_device(replicas, U))
    over = hosted > capacity
    if over.any():
        i, k = (int(x) for x in np.argwhere(over)[0])
        raise InputError(f"placement[{i}]" if replicas is None else f"replicas[{i}]",
                         f"puts more experts on device {k} than its "
                         f"capacity ({int(capacity[i, k])} experts per layer, from "
                         "capacity_experts / capacity_bytes)", int(hosted[i, k]))


def topk_mask(weights: np.ndarray, k: int) -> np.ndarray:
    """``[..., E]`` boolean mask of the ``k`` largest entries of the last axis
    (stable: ties go to the lower index)."""
    weights = np.asarray(weights)
    E = weights.shape[-1]
    if not 1 <= k <= E:
        raise InputError("top_k", f"must be in 1..{E}", k)
    out = np.empty(weights.shape, dtype=bool)
    for start, w in row_blocks(weights):
        # the k-th largest value by partition (linear time), then the ties at it to
        # the lowest indices
        kth = np.partition(w, E - k, axis=-1)[:, E - k:E - k + 1]
        mask = w > kth
        tied = w == kth
        need = k - np.count_nonzero(mask, axis=-1)[:, None]
        mask |= tied & (np.cumsum(tied, axis=-1, dtype=np.int32) <= need)
        out.reshape(-1, E)[start:start + len(w)] = mask
    return out


def topk_order(weights: np.ndarray, k: int) -> np.ndarray:
    """``[..., k]``: each token's ``k`` highest-weight experts, best first (ties go to
    the lower expert id, as :func:`topk_mask`), in the smallest integer type that
    holds the expert ids (:func:`small_int`); blockwise, no copy of the whole array."""
    weights = np.asarray(weights)
    out = np.empty(weights.shape[:-1] + (k,), dtype=small_int(weights.shape[-1]))
    flat_out = out.reshape(-1, k)
    for start, rows in row_blocks(weights):
        x = np.array(rows, dtype=np.float64, copy=True)
        block = flat_out[start:start + len(x)]
        for r in range(k):  # k passes of a vectorized argmax (cheaper than a full argsort)
            block[:, r] = np.argmax(x, axis=-1)
            np.put_along_axis(x, block[:, r, None], -np.inf, axis=-1)
    return out
