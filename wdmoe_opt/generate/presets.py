"""Instance generators: the paper's presets and their documented defaults (SPEC §4).

``generate("wdmoe-sim", seed=0, tokens=512)`` returns a validated
:class:`~wdmoe_opt.model.Instance`. Every parameter of :class:`Scenario` can be
overridden by name; the defaults the paper does not give are explained in
``docs/defaults.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from .._version import __version__
from ..errors import InputError
from ..model import Instance, ModelSizes, System
from ..rng import SeedLike, check_random_state
from .channels import channel_gains, dbm_per_hz_to_w_per_hz
from .gating import synthetic_gating_weights
from .similarity import synthetic_similarity


@dataclass(frozen=True)
class Scenario:
    """Every knob of a generated instance (SI units; ``None`` = the preset's rule)."""

    # model (Mixtral 8x7B by default)
    layers: int = 32
    tokens: int = 1024
    experts: int = 8
    top_k: int = 2
    hidden_dim: int = 4096
    ffn_hidden_dim: int = 14336
    precision_bits: float = 16
    activation_flops: float = 4.0
    # system
    devices: int = 8
    total_bandwidth_hz: float = 100e6
    carrier_ghz: float = 3.5
    noise_psd_dbm_per_hz: float = -174.0
    bs_power_w: float = 10.0
    device_power_w: float = 0.2
    distance_min_m: float = 50.0
    distance_max_m: float = 500.0
    distances_m: tuple[float, ...] | None = None
    compute_min_flops: float = 2e12
    compute_max_flops: float = 16e12
    compute_flops: tuple[float, ...] | None = None
    fast_fading: bool = False
    # placement: "identity" (E = U), "round-robin" (expert e on device e mod U) or
    # "server" (experts beyond the first U-1 on the last device, the testbed's server)
    placement: str = "identity"
    # gating statistics
    popularity_skew: float = 1.0
    layer_correlation: float = 0.5
    sharpness: float = 1.5
    # channel model: path-loss exponent (2 = the paper's free-space formula) and the
    # small-scale fading of the power gain ("rayleigh", or "gamma" of mean 1)
    path_loss_exponent: float = 2.0
    fading: str = "rayleigh"
    gamma_shape: float = 2.0
    # SiftMoE (problem P4, SPEC §6): the first `local_devices` devices sit at the hub
    # (no link); device compute energy; per-layer deadline; similarity tables
    local_devices: int = 0
    compute_j_per_flop: float | None = None
    deadline_s: float | None = None
    similarity: bool = False
    sim_clusters: int = 2
    sim_within: float = 0.25
    sim_norm: float = 4.0
    sim_norm_spread: float = 0.3
    sim_sensitivity: float = 1.0

    def __post_init__(self):
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(name, "must be a positive integer", value)
        for name in _POSITIVE_FLOATS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not (np.isfinite(value) and value > 0):
                raise InputError(name, "must be a positive number", value)
        for name, low, high in _BOUNDED_FLOATS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not (np.isfinite(value) and low <= value <= high):
                raise InputError(name, f"must be a finite number in [{low:g}, {high:g}]", value)
        for name in ("distances_m", "compute_flops"):
            values = getattr(self, name)
            if values is None:
                continue
            for k, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                        not (np.isfinite(v) and v > 0):
                    raise InputError(f"{name}[{k}]", "must be a positive number", v)
        if self.hidden_dim * self.precision_bits > 1e300:
            raise InputError("precision_bits", "times hidden_dim must stay below 1e300 bits",
                             self.precision_bits)
        size = self.layers * self.tokens * self.experts * 8
        if size > MAX_GATING_BYTES:
            raise InputError("tokens", f"make a gating array of {size:,} bytes (layers x tokens "
                             f"x experts x 8), over the limit of {MAX_GATING_BYTES:,}",
                             self.tokens)


#: The largest gating array a generator makes (bytes); larger ones are refused up front.
MAX_GATING_BYTES = 4 << 30

#: Finite numbers with a range: (name, low, high).
_BOUNDED_FLOATS = (("noise_psd_dbm_per_hz", -300.0, 100.0), ("activation_flops", 0.0, 1e6),
                   ("popularity_skew", 0.0, 1e3), ("layer_correlation", 0.0, 1.0),
                   ("sharpness", 1e-6, 1e6))

_POSITIVE_INTS = ("layers", "tokens", "experts", "top_k", "hidden_dim", "ffn_hidden_dim",
                  "devices")
_POSITIVE_FLOATS = ("precision_bits", "total_bandwidth_hz", "carrier_ghz", "bs_power_w",
                    "device_power_w", "distance_min_m", "distance_max_m", "compute_min_flops",
                    "compute_max_flops", "path_loss_exponent", "gamma_shape")


PRESETS: dict[str, Scenario] = {
    # The paper's simulation (§V-A): 8 devices, Mixtral 8x7B, 100 MHz at 3.5 GHz.
    # Gating statistics calibrated so the Table II ablation ratios land in the
    # paper's ranges (docs/defaults.md, "Calibration of wdmoe-sim").
    "wdmoe-sim": Scenario(layer_correlation=0.97, sharpness=1.0),
    # The hardware testbed (§VI): four devices (2x Jetson AGX Orin, Xavier NX,
    # RTX 4070 Ti) hold experts 0-3 of every layer, the A40 server (a fifth
    # "device" next to the router) the other four; 802.11ax at 5 GHz, 160 MHz, indoors.
    "wdmoe-testbed": Scenario(
        devices=5, placement="server", total_bandwidth_hz=160e6, carrier_ghz=5.0,
        bs_power_w=0.1, device_power_w=0.1, distances_m=(0.6, 0.8, 0.9, 0.7, 0.3),
        compute_flops=(10.6e12, 10.6e12, 3.4e12, 40.1e12, 149.7e12), tokens=256,
        noise_psd_dbm_per_hz=-164.0),
    # SiftMoE's Mixtral-8x7B (top-2) setting (docs/energy.md gives every value's source):
    # a user device (device 0, local, expert 0) and 7 helpers, 2 MHz, 0.074 s per layer,
    # helper power 38 dBm, path-loss exponent 4, Gamma(2) fading, a 150 m area.
    "wdmoe-sift": Scenario(
        tokens=1, total_bandwidth_hz=2e6, device_power_w=10 ** (38 / 10) / 1000,
        bs_power_w=0.2, path_loss_exponent=4.0, fading="gamma", gamma_shape=2.0,
        distance_min_m=10.0, distance_max_m=150.0, compute_min_flops=165e12,
        compute_max_flops=165e12, compute_j_per_flop=450 / 165e12, local_devices=1,
        deadline_s=0.074, similarity=True, layer_correlation=0.97, sharpness=1.0),
    # SiftMoE's 32-expert top-4 setting (GPT-OSS-20B: 24 layers, hidden 2880, expert
    # FFN 2880), 0.8 MHz, 0.35 s per layer; 8 devices (1 local), experts round-robin.
    "wdmoe-sift-32": Scenario(
        tokens=1, layers=24, experts=32, top_k=4, hidden_dim=2880, ffn_hidden_dim=2880,
        placement="round-robin", total_bandwidth_hz=0.8e6,
        device_power_w=10 ** (38 / 10) / 1000, bs_power_w=0.2, path_loss_exponent=4.0,
        fading="gamma", gamma_shape=2.0, distance_min_m=10.0, distance_max_m=150.0,
        compute_min_flops=165e12, compute_max_flops=165e12,
        compute_j_per_flop=450 / 165e12, local_devices=1, deadline_s=0.35, similarity=True,
        sim_clusters=8, layer_correlation=0.97, sharpness=1.0),
}


def scenario(preset: str, **overrides) -> Scenario:
    """The preset's :class:`Scenario` with ``overrides`` applied (names checked)."""
    if preset not in PRESETS:
        raise InputError("preset", "is unknown; known: " + ", ".join(PRESETS), preset)
    known = {f.name for f in fields(Scenario)}
    for name in overrides:
        if name not in known:
            raise InputError(name, "is not a generator parameter; known: "
                             + ", ".join(sorted(known)))
    return replace(PRESETS[preset], **overrides)


def generate(preset: str = "wdmoe-sim", seed: SeedLike = 0, *, name: str | None = None,
             gating_weights: np.ndarray | None = None,
             gains: tuple[np.ndarray, np.ndarray] | None = None,
             source: str | None = None, **overrides) -> Instance:
    """Generate an instance of ``preset`` (``wdmoe-sim`` or ``wdmoe-testbed``).

    ``gating_weights`` ([I, J, E], e.g. recorded from a model) and ``gains``
    (``(gain_down, gain_up)``, each [U] or [I, U], e.g. measured) replace the
    synthetic ones; their shapes then set ``layers``, ``tokens``, ``experts`` and
    ``devices``.
    """
    if gating_weights is not None:
        w = np.asarray(gating_weights, dtype=np.float64)
        if w.ndim != 3:
            raise InputError("gating.weights", "must be an [I][J][E] array", w.shape)
        overrides.update(layers=w.shape[0], tokens=w.shape[1], experts=w.shape[2])
    if gains is not None:
        overrides["devices"] = int(np.asarray(gains[0]).shape[-1])
    if "experts" in overrides and "devices" not in overrides and \
            scenario(preset).placement == "identity":
        overrides["devices"] = overrides["experts"]
    sc = scenario(preset, **overrides)
    rng = check_random_state(seed)
    U = sc.devices
    distances = _per_device(sc.distances_m, U, "distances_m",
                            lambda: np.linspace(sc.distance_min_m, sc.distance_max_m, U))
    compute = _per_device(sc.compute_flops, U, "compute_flops",
                          lambda: rng.permutation(
                              np.geomspace(sc.compute_min_flops, sc.compute_max_flops, U)))
    if gains is None:
        layers = sc.layers if sc.fast_fading else None
        gains = tuple(channel_gains(rng, distances, sc.carrier_ghz, layers,
                                    exponent=sc.path_loss_exponent, fading=sc.fading,
                                    gamma_shape=sc.gamma_shape) for _ in range(2))
    if gating_weights is None:
        gating_weights = synthetic_gating_weights(
            rng, sc.layers, sc.tokens, sc.experts, popularity_skew=sc.popularity_skew,
            layer_correlation=sc.layer_correlation, sharpness=sc.sharpness)
    model = ModelSizes.from_dims(sc.layers, sc.experts, sc.top_k, sc.hidden_dim,
                                 sc.ffn_hidden_dim, sc.precision_bits, sc.activation_flops)
    system = System(
        total_bandwidth_hz=sc.total_bandwidth_hz,
        noise_psd_w_per_hz=dbm_per_hz_to_w_per_hz(sc.noise_psd_dbm_per_hz),
        bs_power_w=sc.bs_power_w, compute_flops=compute,
        tx_power_w=np.full(U, sc.device_power_w), gain_down=gains[0], gain_up=gains[1],
        distance_m=distances,
        compute_j_per_flop=None if sc.compute_j_per_flop is None
        else np.full(U, sc.compute_j_per_flop),
        local=None if not sc.local_devices else np.arange(U) < sc.local_devices)
    similarity = None if not sc.similarity else synthetic_similarity(
        rng, sc.layers, sc.experts, clusters=sc.sim_clusters, within=sc.sim_within,
        norm=sc.sim_norm, norm_spread=sc.sim_norm_spread, sensitivity=sc.sim_sensitivity)
    seed_value = seed if isinstance(seed, (int, np.integer)) else None
    return Instance(
        name=name or f"{preset}-J{sc.tokens}-U{U}-s{seed_value}",
        model=model, system=system, gating_weights=gating_weights,
        placement=make_placement(sc.placement, sc.layers, sc.experts, U),
        similarity=similarity, deadlines_s=sc.deadline_s,
        provenance={"generator": f"wdmoe_opt {__version__}", "preset": preset,
                    "seed": seed_value, "source": source or "synthetic",
                    "scenario": _jsonable(asdict(sc))})


def make_placement(kind: str, layers: int, experts: int, devices: int) -> np.ndarray | None:
    """``[I, E]`` device ids for a placement rule (None = identity)."""
    if kind == "identity":
        if experts != devices:
            raise InputError("placement", f"identity needs experts ({experts}) == devices "
                             f"({devices}); use round-robin", kind)
        return None
    if kind == "round-robin":
        row = np.arange(experts) % devices
    elif kind == "server":
        row = np.minimum(np.arange(experts), devices - 1)
    else:
        raise InputError("placement", "must be identity, round-robin or server", kind)
    return np.tile(row, (layers, 1))


def _per_device(given, U: int, field: str, default) -> np.ndarray:
    if given is None:
        return np.asarray(default(), dtype=np.float64)
    arr = np.asarray(given, dtype=np.float64)
    if arr.shape != (U,):
        raise InputError(field, f"must give one value per device ({U})", len(arr))
    return arr


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
