"""The optional ``similarity`` block of an instance (SPEC §6, problem P4).

``replace[i, e, r] = E_x ||F_e(x) - F_r(x)||_2`` and ``skip[i, e] = E_x ||F_e(x)||_2``
over calibration hidden states ``x`` of layer ``i`` (``F_e`` is expert ``e``): the
per-unit-gate-weight deviation of replacing expert ``e`` by ``r``, or of skipping it,
in SiftMoE's deviation estimate (its Prop. 1). ``sensitivity[i] >= 1`` is the largest
amplification of a deviation by layer ``i`` (its Thm. 1), used to split a global
deviation budget over the layers; all ones when absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def _as_floats(value, path: str, what: str) -> np.ndarray:
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(path, f"must be {what}") from None
    if raw.dtype.kind not in "iuf":
        raise InputError(path, f"must be {what}", value)
    return raw.astype(np.float64)


def _numbers(value, path: str, shape: tuple[int, ...], shape_text: str) -> np.ndarray:
    arr = _as_floats(value, path, f"an {shape_text} array of numbers")
    if arr.shape != shape:
        raise InputError(path, f"must have shape {shape_text}", arr.shape)
    return arr


def _first_bad(path: str, bad: np.ndarray, arr: np.ndarray, message: str) -> None:
    if bad.any():
        idx = tuple(int(x) for x in np.argwhere(bad)[0])
        raise InputError(path + "".join(f"[{x}]" for x in idx), message, float(arr[idx]))


@dataclass(frozen=True, eq=False)
class Similarity:
    """Deviation tables of every layer: ``replace`` [I, E, E], ``skip`` [I, E],
    ``sensitivity`` [I] (optional) and a free-text ``source``."""

    replace: np.ndarray
    skip: np.ndarray
    source: str = ""
    sensitivity: np.ndarray | None = None

    def validated(self, layers: int, experts: int) -> Similarity:
        """A read-only copy checked against ``I = layers`` and ``E = experts``."""
        I, E = layers, experts
        d = _numbers(self.replace, "similarity.replace", (I, E, E),
                     f"[layers={I}][experts={E}][experts={E}]")
        _first_bad("similarity.replace", ~np.isfinite(d) | (d < 0), d,
                   "must be a finite non-negative number")
        diag = d[:, np.arange(E), np.arange(E)]
        if (diag != 0).any():
            i, e = (int(x) for x in np.argwhere(diag != 0)[0])
            raise InputError(f"similarity.replace[{i}][{e}][{e}]",
                             "must be 0 (an expert does not deviate from itself)",
                             float(diag[i, e]))
        s = _numbers(self.skip, "similarity.skip", (I, E), f"[layers={I}][experts={E}]")
        _first_bad("similarity.skip", ~np.isfinite(s) | (s < 0), s,
                   "must be a finite non-negative number")
        if not isinstance(self.source, str):
            raise InputError("similarity.source", "must be a string", self.source)
        sens = None
        if self.sensitivity is not None:
            sens = _numbers(self.sensitivity, "similarity.sensitivity", (I,), f"[layers={I}]")
            _first_bad("similarity.sensitivity", ~np.isfinite(sens) | (sens < 1), sens,
                       "must be a finite number >= 1 (SiftMoE's Thm. 1)")
            sens = _readonly(sens)
        return Similarity(_readonly(d), _readonly(s), self.source, sens)

    def sensitivities(self, layers: int) -> np.ndarray:
        """``[I]`` per-layer sensitivities (ones when not given)."""
        return np.ones(layers) if self.sensitivity is None else self.sensitivity


def deadlines_array(value, layers: int) -> np.ndarray:
    """``deadlines_s`` as a read-only ``[I]`` array (one number applies to every layer)."""
    arr = _as_floats(value, "deadlines_s", "a number or one number per layer")
    if arr.ndim == 0:
        arr = np.full(layers, float(arr))
    if arr.shape != (layers,):
        raise InputError("deadlines_s", f"must be a number or [layers={layers}] numbers",
                         arr.shape)
    _first_bad("deadlines_s", ~np.isfinite(arr) | (arr <= 0), arr,
               "must be a finite positive number of seconds")
    return _readonly(arr)
