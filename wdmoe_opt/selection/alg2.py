"""``p2/alg2``: the paper's Algorithm 2 (testbed, online), as a stateful policy.

:class:`Alg2Policy` keeps, per layer and device, the history of measured
latency per token (eq. 30, ``t_bar = E[t / J]``); before a batch it predicts each
device's time ``t_hat_k = J_k t_bar_k`` (eq. 31) for the router's Top-K, finds the
bottleneck ``k* = argmax t_hat`` and acts only if ``t_hat_k* > ratio * Q3(t_hat)``.
It then drops at most ``J_drop = floor((t_hat_k* - Q3) / t_bar_k*)`` tokens from
``k*`` (eq. 32): the candidates are tokens whose lowest kept Top-K weight is on
``k*`` and below the mean weight of ``k*``'s tokens, lowest weights first, never a
token's last expert. ``observe(latency_s, tokens)`` adds a batch's measurements.

A cold start (no measurement yet for a device of a layer) uses the model's
per-token time ``c_k + a_k`` (eqs. 6-7) at the policy's bandwidth. ``J_k`` counts
(token, expert) pairs on ``k``, the tokens a device processes; under the identity
placement the cold prediction is the model's device time (eq. 10) exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import Instance, Selection
from ..options import Options, option
from ..problems import SelectionProblem
from ..registry import register
from ..solution import Solution, Status
from .common import LayerTimes, RankedSelection, check_selection, check_top_k


@dataclass(frozen=True)
class Alg2Options(Options):
    """Knobs of Algorithm 2 (paper defaults)."""

    ratio: float = option(1.5, "positive", "act when t_hat_k* > ratio x quantile(t_hat)")
    quantile: float = option(0.75, "unit", "the quantile of t_hat (Q3 in the paper)")
    top_k: int | None = option(None, "optional_positive_int",
                               "experts kept before dropping (None: the instance's K)")


class Alg2Policy:
    """Algorithm 2 as an online policy: :meth:`select` a batch, then :meth:`observe` it.

    Parameters
    ----------
    instance : Instance
        Sets the model, system and placement every batch shares; with
        ``bandwidth_hz`` (uniform if None) it gives the cold-start prediction.
    options : Alg2Options
    """

    def __init__(self, instance: Instance, bandwidth_hz=None,
                 options: Alg2Options | None = None):
        self.options = options or Alg2Options()
        self.options.validate("Alg2Policy")
        self.instance = instance
        self.problem = SelectionProblem(instance, bandwidth_hz)
        times = LayerTimes(self.problem)
        #: ``[I, U]`` cold-start per-token time ``c_k + a_k`` (eqs. 6-7).
        self.prior_s = times.comm + times.comp
        self._sum = np.zeros_like(self.prior_s)
        self._count = np.zeros(self.prior_s.shape, dtype=np.int64)
        #: ``t_bar`` after each :meth:`observe` (the first entry is the cold start).
        self.history: list[np.ndarray] = [self.per_token_latency_s()]

    def per_token_latency_s(self) -> np.ndarray:
        """Eq. (30): ``[I, U]`` mean measured latency per token (the prior where unmeasured)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self._count > 0, self._sum / np.maximum(self._count, 1),
                            self.prior_s)

    def select(self, batch: Instance | None = None) -> Selection:
        """The selection for ``batch`` (an instance sharing this policy's system)."""
        batch = self.instance if batch is None else batch
        if batch.placement.shape != self.instance.placement.shape or \
                batch.n_devices != self.instance.n_devices:
            raise InputError("batch", "must have the policy's layers, experts and devices",
                             batch.gating_weights.shape)
        problem = SelectionProblem(batch, self.problem.bandwidth_hz)
        k = batch.model.top_k if self.options.top_k is None else self.options.top_k
        sel = RankedSelection(LayerTimes(problem), min(k, batch.n_experts))
        sel.drop(self._hits(sel))
        return Selection(sel.mask())

    def _hits(self, sel: RankedSelection) -> np.ndarray:
        """``[I, J]``: the tokens to drop from each layer's bottleneck (eqs. 31-32)."""
        t_bar = self.per_token_latency_s()
        t_hat = sel.p * t_bar                                          # eq. (31)
        n_layers, n_tokens = sel.n_kept.shape
        layers = np.arange(n_layers)
        k_star = np.argmax(t_hat, axis=1)
        q3 = np.quantile(t_hat, self.options.quantile, axis=1)
        peak = t_hat[layers, k_star]
        act = peak > self.options.ratio * q3
        with np.errstate(invalid="ignore", divide="ignore"):
            n_drop = np.where(act, np.floor((peak - q3) / t_bar[layers, k_star]), 0)  # eq. 32
            mean_w = sel.num[layers, k_star] / np.maximum(sel.p[layers, k_star], 1)
        jj = np.arange(n_tokens)
        _, w_low, k_low = sel.lowest(layers[:, None], jj[None, :])
        cand = sel.droppable() & (k_low == k_star[:, None]) & (w_low < mean_w[:, None])
        order = np.argsort(np.where(cand, w_low, np.inf), axis=1, kind="stable")
        rank_ok = jj[None, :] < np.minimum(n_drop, cand.sum(axis=1))[:, None]
        hit = np.zeros((n_layers, n_tokens), dtype=bool)
        np.put_along_axis(hit, order, rank_ok, axis=1)
        return hit

    def observe(self, latency_s, tokens) -> None:
        """Add one batch's measured device latencies and token counts (each ``[I, U]``).

        Devices with no tokens in a layer add nothing to that layer's history.
        """
        shape = self.prior_s.shape
        lat_arr = np.asarray(latency_s, dtype=np.float64)
        tok = np.asarray(tokens, dtype=np.float64)
        for name, arr in (("latency_s", lat_arr), ("tokens", tok)):
            if arr.shape != shape:
                raise InputError(name, f"must have shape [layers][devices] = {list(shape)}",
                                 arr.shape)
            if not np.isfinite(arr).all() or (arr < 0).any():
                raise InputError(name, "must hold finite non-negative numbers")
        seen = tok > 0
        self._sum[seen] += lat_arr[seen] / tok[seen]
        self._count[seen] += 1
        self.history.append(self.per_token_latency_s())


@register("p2", "alg2", options=Alg2Options)
def solve_alg2(problem: SelectionProblem, options: Alg2Options) -> Solution:
    """Algorithm 2 (paper §VI-C) in one shot from a cold start (model-predicted times)."""
    inst = problem.instance
    check_top_k(problem, options.top_k, "p2/alg2")
    selection = Alg2Policy(inst, problem.bandwidth_hz, options).select()
    return Solution.evaluate(inst, check_selection(problem, selection.mask),
                             problem.bandwidth_hz, problem="p2", method="p2/alg2",
                             status=Status.FEASIBLE)
