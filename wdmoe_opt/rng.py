"""Seeds to generators in one place (scikit-learn's ``check_random_state`` idea)."""

from __future__ import annotations

import numpy as np

from .errors import InputError

SeedLike = int | np.random.Generator | None


def check_random_state(seed: SeedLike, field: str = "seed") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``seed`` (int, Generator or None)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    raise InputError(field, "must be a non-negative integer", seed)
