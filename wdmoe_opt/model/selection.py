"""The expert selection ``q[i, j, e]`` (eqs. 16-17) as an immutable boolean mask."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ..errors import InputError
from .instance import Instance, _fresh, _readonly, topk_mask


@dataclass(frozen=True, eq=False)
class Selection:
    """Which experts each token keeps: ``mask[i, j, e]`` is ``q^i_{j,e}``."""

    mask: np.ndarray

    def __post_init__(self):
        given = self.mask
        m = np.asarray(given)
        if m.ndim != 3:
            raise InputError("selection", "must be an [I][J][E] mask", m.shape)
        if m.dtype != np.bool_:
            if not np.isin(m, (0, 1)).all():
                raise InputError("selection", "must hold 0/1 values")
            m = m.astype(bool)
        object.__setattr__(self, "mask", _readonly(m, private=_fresh(m, given)))

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
        """Schema form: ``[I][J]`` lists of kept expert ids, ascending (fresh lists).

        One ``nonzero`` pass, then every token's list is a slice of one flat list
        cut by C-level ``map`` (no Python loop over tokens), with the cyclic garbage
        collector paused while the million small lists are built.
        """
        I, J, E = self.shape
        flat = self.mask.reshape(-1, E)
        counts = np.count_nonzero(flat, axis=1)
        ends = np.cumsum(counts)
        starts = ends - counts
        with gc_paused():
            ids = np.nonzero(flat)[1].tolist()
            tokens = list(map(ids.__getitem__, map(slice, starts.tolist(), ends.tolist())))
            return [tokens[i * J:(i + 1) * J] for i in range(I)]

    @classmethod
    def topk(cls, instance: Instance, k: int | None = None) -> Selection:
        """The router's choice: each token keeps its ``k`` highest-weight experts
        (``k`` = the instance's top_k by default; ties go to the lower expert id)."""
        if k is None or k == instance.model.top_k:
            return cls(instance.router_topk_mask)
        return cls(topk_mask(instance.gating_weights, k))


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building (or parsing) millions of
    small lists: each allocation would otherwise count towards a collection, and
    the collections over the growing heap make the build quadratic in practice."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def mask_from_lists(lists, shape: tuple[int, int, int], field: str = "selection") -> np.ndarray:
    """The ``[I, J, E]`` boolean mask ``q`` (eqs. 16-17) of ``[I][J]`` lists of kept
    expert ids, the schema form.

    The structure is checked per layer, the ``I * J`` token lists are flattened with
    C-level ``itertools.chain`` and ``map``, and the ids are checked and scattered as
    arrays: no Python loop over tokens.

    Raises
    ------
    InputError
        Naming ``field[i][j]`` of the first token whose list is malformed: not a list,
        an id that is not an integer or outside ``0..E-1``, or an id kept twice.
    """
    I, J, E = shape
    if not isinstance(lists, Sequence) or isinstance(lists, str) or len(lists) != I:
        raise InputError(field, f"must have one entry per layer ({I})",
                         len(lists) if isinstance(lists, Sequence) else lists)
    for i, layer in enumerate(lists):
        if not isinstance(layer, Sequence) or isinstance(layer, str) or len(layer) != J:
            raise InputError(f"{field}[{i}]", f"must have one entry per token ({J})",
                             len(layer) if isinstance(layer, Sequence) else layer)
    tokens = list(chain.from_iterable(lists))                    # I * J token lists

    def bad(n: int, message: str):
        return InputError(f"{field}[{n // J}][{n % J}]", message, tokens[n])

    if not set(map(type, tokens)) <= {list, tuple}:
        raise bad(next(n for n, t in enumerate(tokens) if not isinstance(t, (list, tuple))),
                  "must be a list of expert ids")
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = list(chain.from_iterable(tokens))
    owner = np.repeat(np.arange(I * J), counts)                  # token of each id
    range_msg = f"holds an expert id outside 0..{E - 1}"
    if not set(map(type, flat)) <= {int}:                         # bool is not int here
        k = next(k for k, e in enumerate(flat) if type(e) is not int)
        raise bad(int(owner[k]), "must hold integer expert ids")
    try:
        ids = np.asarray(flat, dtype=np.int64)
    except OverflowError:
        raise bad(int(owner[next(k for k, e in enumerate(flat) if not 0 <= e < E)]),
                  range_msg) from None
    out_of_range = (ids < 0) | (ids >= E)
    if out_of_range.any():
        raise bad(int(owner[np.argmax(out_of_range)]), range_msg)
    mask = np.zeros((I * J, E), dtype=bool)
    mask[owner, ids] = True
    repeated = np.count_nonzero(mask, axis=1) != counts
    if repeated.any():
        raise bad(int(np.argmax(repeated)), "repeats an expert id")
    return mask.reshape(I, J, E)


__all__ = ["Selection", "gc_paused", "mask_from_lists"]
