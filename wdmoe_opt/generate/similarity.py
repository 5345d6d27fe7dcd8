"""Synthetic SiftMoE similarity tables with a controllable structure (SPEC §6).

Each expert ``e`` of a layer gets a mean output vector ``v_e`` in a latent space:
experts fall into ``clusters`` groups around a random centre, ``within`` is the
spread inside a group relative to the centre (small = near-duplicate experts), and
the norms ``||v_e||`` are log-normal around ``norm`` with log-spread ``norm_spread``.
Then ``skip[e] = ||v_e||`` and ``replace[e, r] = ||v_e - v_r||``: non-negative,
symmetric, zero on the diagonal, and the triangle inequality holds, as for the
measured tables (norms of differences of expert outputs).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..model.similarity import Similarity

#: Dimension of the latent space of expert outputs (only the geometry matters).
LATENT_DIM = 16


def synthetic_similarity(rng: np.random.Generator, layers: int, experts: int, *,
                         clusters: int = 2, within: float = 0.25, norm: float = 4.0,
                         norm_spread: float = 0.3, sensitivity: float = 1.0) -> Similarity:
    """Draw ``replace`` [I, E, E] and ``skip`` [I, E] (see the module docstring);
    ``sensitivity`` (>= 1) is every layer's amplification (SiftMoE's Thm. 1)."""
    if isinstance(clusters, bool) or not isinstance(clusters, int) or not 1 <= clusters:
        raise InputError("sim_clusters", "must be a positive integer", clusters)
    for name, v in (("sim_within", within), ("sim_norm", norm), ("sim_norm_spread", norm_spread)):
        if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
            raise InputError(name, "must be a finite non-negative number", v)
    if not (isinstance(sensitivity, (int, float)) and np.isfinite(sensitivity)
            and sensitivity >= 1):
        raise InputError("sim_sensitivity", "must be a number >= 1", sensitivity)
    group = rng.integers(0, clusters, size=(layers, experts))
    centres = rng.standard_normal((layers, clusters, LATENT_DIM))
    centres /= np.linalg.norm(centres, axis=-1, keepdims=True)
    v = (np.take_along_axis(centres, group[..., None], axis=1)
         + within * rng.standard_normal((layers, experts, LATENT_DIM)) / np.sqrt(LATENT_DIM))
    v *= (norm * np.exp(norm_spread * rng.standard_normal((layers, experts)))
          / np.linalg.norm(v, axis=-1))[..., None]
    replace = np.linalg.norm(v[:, :, None, :] - v[:, None, :, :], axis=-1)
    replace[:, np.arange(experts), np.arange(experts)] = 0.0
    return Similarity(replace=replace, skip=np.linalg.norm(v, axis=-1),
                      source=f"synthetic (clusters={clusters}, within={within}, norm={norm}, "
                             f"norm_spread={norm_spread})",
                      sensitivity=None if sensitivity == 1 else np.full(layers, sensitivity))
