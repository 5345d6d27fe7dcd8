"""Imports of recorded data: gating weights or router logits (.npy/.npz), channel gains (CSV)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.instance import WEIGHT_SUM_TOL
from .gating import softmax

GATING_KINDS = ("auto", "weights", "logits")


def load_gating_array(path: str | os.PathLike, kind: str = "auto",
                      key: str | None = None) -> np.ndarray:
    """Gating weights ``[I, J, E]`` from a ``.npy`` or ``.npz`` array.

    ``kind="logits"`` applies a softmax over experts; ``"weights"`` takes the
    array as probabilities; ``"auto"`` takes it as probabilities when it is
    non-negative with rows summing to 1, else as logits. In a ``.npz``, ``key``
    names the array (default: ``weights``, ``logits`` or the only array).
    """
    if kind not in GATING_KINDS:
        raise InputError("kind", "must be one of " + ", ".join(GATING_KINDS), kind)
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError("gating file", "does not exist", str(path)) from None
    except (ValueError, OSError) as exc:
        raise InputError("gating file", f"is not a .npy/.npz array ({exc})", str(path)) from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            chosen = key or next((n for n in ("weights", "logits") if n in names),
                                 names[0] if len(names) == 1 else None)
            if chosen not in names:
                raise InputError("gating file", f"has arrays {names}; name one with key", key)
            if kind == "auto" and chosen in ("weights", "logits"):
                kind = chosen
            arr = np.asarray(loaded[chosen], dtype=np.float64)
    else:
        arr = np.asarray(loaded, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InputError("gating array", "must be [I][J][E] (or [J][E] for one layer)", arr.shape)
    if not np.isfinite(arr).all():
        raise InputError("gating array", "holds NaN or infinite values")
    looks_like_weights = (arr >= 0).all() and np.allclose(arr.sum(-1), 1, atol=WEIGHT_SUM_TOL)
    if kind == "logits" or (kind == "auto" and not looks_like_weights):
        return softmax(arr)
    return arr


def load_channel_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Channel power gains from a CSV with columns ``device,gain_down,gain_up`` and
    optionally ``layer`` (fast fading: one row per layer and device).

    Returns ``(gain_down, gain_up)``, each ``[U]`` or ``[I, U]``.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise InputError("channel file", "does not exist", str(path)) from None
    if not rows:
        raise InputError("channel file", "has no rows", str(path))
    for col in ("device", "gain_down", "gain_up"):
        if col not in rows[0]:
            raise InputError("channel file", f"needs a '{col}' column", list(rows[0]))
    per_layer = "layer" in rows[0]
    try:
        dev = np.array([int(r["device"]) for r in rows])
        lay = np.array([int(r["layer"]) for r in rows]) if per_layer else np.zeros(len(rows), int)
        down = np.array([float(r["gain_down"]) for r in rows])
        up = np.array([float(r["gain_up"]) for r in rows])
    except (TypeError, ValueError) as exc:
        raise InputError("channel file", f"holds a value that is not a number ({exc})") from None
    U, I = dev.max() + 1, lay.max() + 1
    if dev.min() < 0 or lay.min() < 0 or len(set(zip(lay, dev, strict=True))) != len(rows) or \
            len(rows) != U * I:
        raise InputError("channel file", f"must have exactly one row per device (0..{U - 1})"
                         + (f" and layer (0..{I - 1})" if per_layer else ""))
    g_down, g_up = np.empty((I, U)), np.empty((I, U))
    g_down[lay, dev], g_up[lay, dev] = down, up
    return (g_down, g_up) if per_layer else (g_down[0], g_up[0])
