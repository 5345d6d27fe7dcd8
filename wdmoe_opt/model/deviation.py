"""SiftMoE's per-token deviation estimate and the P4 actions (SPEC §6).

An *action array* ``a[i, j, s]`` (int, ``[I, J, K]``) says what happens to the
``s``-th router Top-K expert ``e = topk_experts[i, j, s]`` (ascending ids) of token
``j`` in layer ``i``: ``a = e`` keep, ``a = r != e`` replace by ``r`` (``r``'s output
weighted by ``e``'s gate weight), ``a = -1`` skip. The experts a token invokes,
``{a >= 0}``, must be distinct.

The deviation of token ``j`` (SiftMoE's Prop. 1, our notation):
``Delta[i, j] = sum_s w[i, j, e_s] d_i(e_s, a_s)`` with ``d = 0`` (keep),
``replace[i, e, r]`` (replace) or ``skip[i, e]`` (skip).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .instance import Instance
from .selection import Selection

#: Relative slack on ``Delta <= eps`` and ``t <= T`` for round-off in sums of products.
FEASIBILITY_RTOL = 1e-9


def topk_experts(instance: Instance) -> np.ndarray:
    """``[I, J, K]`` int64: each token's router Top-K expert ids, ascending (a copy of
    the instance's read-only :attr:`~Instance.router_topk_experts`)."""
    return instance.router_topk_experts.copy()


def keep_all_actions(instance: Instance) -> np.ndarray:
    """The ideal Top-K: every token keeps its router Top-K (``a = e``)."""
    return topk_experts(instance)


def require_similarity(instance: Instance):
    if instance.similarity is None:
        raise InputError("similarity", "is required for problem p4 (SPEC §6): generate it "
                         "(wdmoe-sift preset) or record it (record --similarity)")
    return instance.similarity


def deviation(instance: Instance, actions: np.ndarray) -> np.ndarray:
    """``[..., I, J]`` deviation estimate of each token (SiftMoE's Prop. 1).

    ``actions`` is ``[..., I, J, K]``; leading axes broadcast (candidate profiles).
    """
    sim = require_similarity(instance)
    I, J, E = instance.gating_weights.shape
    row = np.arange(I)[:, None, None] * E + instance.router_topk_experts   # [I, J, K]: (i, e)
    a = np.asarray(actions)
    d = np.where(a < 0, np.take(sim.skip, row), np.take(sim.replace, row * E + np.maximum(a, 0)))
    return (instance.router_topk_weights * d).sum(axis=-1)


def check_actions(instance: Instance, actions, field: str = "actions") -> np.ndarray:
    """Validate an ``[I, J, K]`` action array; return it as read-only int64."""
    I, J, E = instance.gating_weights.shape
    K = instance.model.top_k
    a = _int_array(actions, (I, J, K), field, f"an [{I}][{J}][{K}] integer array")
    bad = (a < -1) | (a >= E)
    if bad.any():
        i, j, s = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(f"{field}[{i}][{j}][{s}]", f"must be -1 (skip) or an expert in "
                         f"0..{E - 1}", int(a[i, j, s]))
    dup = duplicate_invocations(a)
    if dup.any():
        i, j = (int(x) for x in np.argwhere(dup)[0])
        raise InputError(f"{field}[{i}][{j}]", "invokes an expert twice", a[i, j].tolist())
    a = a.astype(np.int64)
    a.setflags(write=False)
    return a


def _int_array(value, shape: tuple[int, ...], field: str, what: str) -> np.ndarray:
    try:
        a = np.asarray(value)
    except (TypeError, ValueError):
        raise InputError(field, f"must be {what}") from None
    if a.shape != shape or a.dtype.kind not in "iu":
        raise InputError(field, f"must be {what}", (a.shape, a.dtype.name))
    return a


def duplicate_invocations(actions: np.ndarray) -> np.ndarray:
    """``[..., J]`` bool: the token invokes some expert twice (``K`` is small: pairwise)."""
    K = actions.shape[-1]
    dup = np.zeros(actions.shape[:-1], dtype=bool)
    for s in range(K):
        for t in range(s + 1, K):
            dup |= (actions[..., s] >= 0) & (actions[..., s] == actions[..., t])
    return dup


def selection_from_actions(instance: Instance, actions: np.ndarray) -> Selection:
    """The experts actually invoked, as a :class:`Selection` (a token may invoke none)."""
    I, J, E = instance.gating_weights.shape
    a = np.asarray(actions)
    on = np.flatnonzero(a >= 0)
    mask = np.zeros(I * J * E, dtype=bool)
    mask[on // a.shape[-1] * E + a.ravel()[on]] = True
    return Selection(mask.reshape(I, J, E))


def action_pairs(instance: Instance, actions: np.ndarray) -> np.ndarray:
    """Schema form as an ``[I, J, K, 2]`` array of ``[e, r]`` pairs (``r = e`` keep,
    ``-1`` skip); ``.tolist()`` gives the document's ``[I][J]`` lists."""
    return np.stack([instance.router_topk_experts, np.asarray(actions)], axis=-1)


def actions_from_lists(instance: Instance, lists, field: str = "actions") -> np.ndarray:
    """Inverse of :func:`action_pairs`, validated (pairs in any order per token)."""
    I, J, _ = instance.gating_weights.shape
    K = instance.model.top_k
    pairs = _int_array(lists, (I, J, K, 2), field, f"[{I}][{J}] lists of {K} integer [e, r] "
                       "pairs")
    order = np.argsort(pairs[..., 0], axis=-1, kind="stable")
    pairs = np.take_along_axis(pairs, order[..., None], axis=2)
    wrong = (pairs[..., 0] != instance.router_topk_experts).any(axis=-1)
    if wrong.any():
        i, j = (int(x) for x in np.argwhere(wrong)[0])
        raise InputError(f"{field}[{i}][{j}]", "must name each router Top-K expert once",
                         pairs[i, j, :, 0].tolist())
    return check_actions(instance, pairs[..., 1], field)
