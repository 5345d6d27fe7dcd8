"""Synthetic router probabilities with controllable popularity skew and layer correlation."""

from __future__ import annotations

import numpy as np

from ..errors import InputError


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (router logits -> probabilities)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    ez = np.exp(z)
    return ez / ez.sum(axis=axis, keepdims=True)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    """Standard-normal AR(1) sequence along axis 0 with lag-one correlation ``rho``."""
    x = rng.standard_normal(shape)
    out = np.empty(shape)
    out[0] = x[0]
    s = np.sqrt(1.0 - rho * rho)
    for i in range(1, shape[0]):  # over layers only
        out[i] = rho * out[i - 1] + s * x[i]
    return out


def synthetic_gating_weights(rng: np.random.Generator, layers: int, tokens: int, experts: int,
                             *, popularity_skew: float = 1.0, layer_correlation: float = 0.5,
                             sharpness: float = 1.5) -> np.ndarray:
    """Gating weights ``[I, J, E]`` from a logit model.

    ``logit[i, j, e] = popularity_skew * b[i, e] + sharpness * x[i, j, e]`` with
    expert popularity ``b`` and token preferences ``x`` both AR(1) across layers
    (correlation ``layer_correlation``), then a softmax over experts.
    ``popularity_skew = 0`` makes every expert equally popular on average.
    """
    if popularity_skew < 0:
        raise InputError("popularity_skew", "must be non-negative", popularity_skew)
    if not -1 < layer_correlation < 1:
        raise InputError("layer_correlation", "must be in (-1, 1)", layer_correlation)
    if sharpness <= 0:
        raise InputError("sharpness", "must be positive", sharpness)
    popularity = _ar1(rng, (layers, 1, experts), layer_correlation)
    preference = _ar1(rng, (layers, tokens, experts), layer_correlation)
    return softmax(popularity_skew * popularity + sharpness * preference)
