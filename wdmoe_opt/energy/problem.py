"""Problem P4 (SPEC §6): minimize energy over the SiftMoE actions s.t. the
per-layer deviation budgets and deadlines, at a given bandwidth."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..model import Instance, uniform_bandwidth_hz
from ..model.deviation import require_similarity
from ..problems import check_bandwidth, refuse_replicas


def layer_budgets(epsilon: float, sensitivities: np.ndarray) -> np.ndarray:
    """SiftMoE's Thm. 1: ``eps_i = eps / prod_{i' > i} s_{i'}`` (``[I]``)."""
    s = np.asarray(sensitivities, dtype=np.float64)
    later = np.r_[np.cumprod(s[::-1])[::-1][1:], 1.0]     # prod over i' > i
    return epsilon / later


@dataclass(frozen=True, eq=False)
class EnergyProblem:
    """P4: ``min`` total energy s.t. ``Delta[i, j] <= eps_i`` and ``t^i <= T_i``.

    Parameters
    ----------
    instance : Instance
        Must carry a ``similarity`` block.
    deviation_budget : float or array [I]
        A global budget ``eps`` (split over layers by the sensitivities, SiftMoE's
        Thm. 1) or one budget per layer. ``inf`` (default): no accuracy constraint.
    bandwidth_hz : array [U], optional
        Defaults to the uniform split.
    deadlines_s : float or array [I], optional
        Defaults to the instance's ``deadlines_s``; none (``inf``) if both absent.
    sensitivities : array [I], optional
        Defaults to the instance's ``similarity.sensitivity`` (ones if absent).
    """

    instance: Instance
    deviation_budget: float | np.ndarray = np.inf
    bandwidth_hz: np.ndarray | None = None
    deadlines_s: float | np.ndarray | None = None
    sensitivities: np.ndarray | None = None
    key = "p4"
    #: ``[I]`` budgets, deadlines, sensitivities and ``[U]`` bandwidth, set at the door
    layer_budget: np.ndarray = field(init=False)
    layer_deadline: np.ndarray = field(init=False)
    layer_sensitivity: np.ndarray = field(init=False)

    def __post_init__(self):
        inst = self.instance
        refuse_replicas(inst, "p4")
        I = inst.n_layers
        sim = require_similarity(inst)
        sens = (sim.sensitivities(I) if self.sensitivities is None
                else _layer_array(self.sensitivities, I, "sensitivities", minimum=1.0))
        eps = np.asarray(self.deviation_budget, dtype=np.float64)
        if eps.ndim == 0:
            if not (eps >= 0):
                raise InputError("deviation_budget", "must be a non-negative number",
                                 float(eps))
            budgets = layer_budgets(float(eps), sens)
        else:
            budgets = _layer_array(eps, I, "deviation_budget", minimum=0.0, allow_inf=True)
        b = (uniform_bandwidth_hz(inst) if self.bandwidth_hz is None
             else check_bandwidth(inst, self.bandwidth_hz))
        if self.deadlines_s is not None:
            t = np.asarray(self.deadlines_s, dtype=np.float64)
            t = _layer_array(np.full(I, float(t)) if t.ndim == 0 else t, I, "deadlines_s",
                             minimum=0.0, allow_inf=True, strict=True)
        elif inst.deadlines_s is not None:
            t = inst.deadlines_s
        else:
            t = np.full(I, np.inf)
        for name, value in (("layer_budget", budgets), ("bandwidth_hz", b),
                            ("layer_deadline", t), ("layer_sensitivity", sens)):
            value = np.array(value, dtype=np.float64, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, name, value)


    @property
    def decode(self) -> bool:
        """One token per batch (SiftMoE's single-token decoding)."""
        return self.instance.n_tokens == 1

    def with_bandwidth(self, bandwidth_hz) -> EnergyProblem:
        """The same problem at another bandwidth (P4-B alternation)."""
        return EnergyProblem(self.instance, self.layer_budget, bandwidth_hz,
                             self.layer_deadline, self.layer_sensitivity)


def _layer_array(value, layers: int, field: str, minimum: float, allow_inf: bool = False,
                 strict: bool = False) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(field, f"must be [{layers}] numbers") from None
    if a.shape != (layers,):
        raise InputError(field, f"must have one value per layer ({layers})", a.shape)
    ok = (np.isfinite(a) | (allow_inf & (a == np.inf))) & (a > minimum if strict
                                                           else a >= minimum)
    if not ok.all():
        i = int(np.argmin(ok))
        rel = ">" if strict else ">="
        raise InputError(f"{field}[{i}]", f"must be a number {rel} {minimum:g}", float(a[i]))
    return a
