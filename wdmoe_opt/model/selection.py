"""The expert selection ``q[i, j, e]`` (eqs. 16-17) as an immutable boolean mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .instance import Instance, topk_mask


@dataclass(frozen=True, eq=False)
class Selection:
    """Which experts each token keeps: ``mask[i, j, e]`` is ``q^i_{j,e}``."""

    mask: np.ndarray

    def __post_init__(self):
        m = np.asarray(self.mask)
        if m.ndim != 3:
            raise InputError("selection", "must be an [I][J][E] mask", m.shape)
        if m.dtype != np.bool_:
            if not np.isin(m, (0, 1)).all():
                raise InputError("selection", "must hold 0/1 values")
            m = m.astype(bool)
        m = np.array(m, copy=True)
        m.setflags(write=False)
        object.__setattr__(self, "mask", m)

    def memo(self, key, compute):
        """``compute()``, cached on this immutable selection under ``key`` (loads, weights)."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.mask.shape  # type: ignore[return-value]

    def kept_lists(self) -> list[list[list[int]]]:
        """Schema form: ``[I][J]`` lists of kept expert ids, ascending."""
        I, J, E = self.shape
        flat = self.mask.reshape(-1, E)
        ids = np.nonzero(flat)[1]
        per_token = np.split(ids, np.cumsum(flat.sum(axis=1))[:-1])
        lists = [t.tolist() for t in per_token]
        return [lists[i * J:(i + 1) * J] for i in range(I)]

    @classmethod
    def topk(cls, instance: Instance, k: int | None = None) -> Selection:
        """The router's choice: each token keeps its ``k`` highest-weight experts
        (``k`` = the instance's top_k by default; ties go to the lower expert id)."""
        if k is None or k == instance.model.top_k:
            return cls(instance.router_topk_mask)
        return cls(topk_mask(instance.gating_weights, k))


__all__ = ["Selection"]
