"""Replicated experts (P5, SPEC §7): an expert on several devices, each token's copy
chosen by a fixed rule.

``replicas[i][e]`` lists the devices holding a copy of expert ``e`` of layer ``i``;
its first entry is ``placement[i][e]`` (the primary copy: every consumer that
ignores replication reads the placement and so the primary). In memory it is an
``[I, E, R]`` int64 array padded with ``-1`` (``R`` the most copies of an expert).

The route (which copy serves each selected (token, expert) pair) follows the
*split rule*, chosen for being deterministic, vectorized and checkable from the
selection alone. The experts whose primary copy is on device ``k`` form ``k``'s
*group*; in every batch, the tokens sent to the group (selecting at least one of
its experts), in token order, are ranked ``t = 0 .. n - 1``, and the pair of token
``t`` with expert ``e`` of the group goes to copy ``floor(t R_e / n)`` of
``replicas[i][e]`` (``R_e`` copies). So the group's tokens are cut into ``R_e``
contiguous blocks of as equal sizes as possible; experts of one group with the
same copy list (a device *mirrored* on another) send a token's pairs to one
device, so it crosses the link once (eq. 9); an expert alone on its device gets
an exactly even split of its pairs (sizes ``n // R_e`` or one more), an expert
sharing it an even split in expectation. The loads ``(u, p)`` of eq. 9 are counted
on the routed devices; eqs. 10-13 and P3 are unchanged given the loads.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: The name of the routing rule, as the solution documents state it.
ROUTE_RULE = "split"


def replicas_array(value, placement: np.ndarray | None, I: int, E: int, U: int) -> np.ndarray:
    """``[I, E, R]`` int64 (padded with -1) from ``[I][E]`` lists of distinct device ids
    (or an already padded array), each list starting with ``placement[i][e]`` when
    a placement is given. Errors name the field: ``replicas[i][e]``."""
    if isinstance(value, np.ndarray) and value.ndim == 3:
        rows = [[[int(k) for k in value[i, e] if k >= 0] for e in range(value.shape[1])]
                for i in range(value.shape[0])]
    else:
        rows = value
    if not isinstance(rows, (list, tuple)) or len(rows) != I or any(
            not isinstance(r, (list, tuple)) or len(r) != E for r in rows):
        raise InputError("replicas", f"must be [layers={I}][experts={E}] lists of device ids")
    R = max(len(c) if isinstance(c, (list, tuple)) else 0 for r in rows for c in r)
    out = np.full((I, E, max(R, 1)), -1, dtype=np.int64)
    for i, row in enumerate(rows):
        for e, copies in enumerate(row):
            where = f"replicas[{i}][{e}]"
            if not isinstance(copies, (list, tuple)) or not copies:
                raise InputError(where, "must be a non-empty list of device ids", copies)
            if any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in copies):
                raise InputError(where, "must hold integer device ids", copies)
            if any(not 0 <= k < U for k in copies):
                raise InputError(where, f"names a missing device (devices are 0..{U - 1})",
                                 list(copies))
            if len(set(copies)) != len(copies):
                raise InputError(where, "lists a device twice", list(copies))
            if placement is not None and copies[0] != placement[i, e]:
                raise InputError(where, f"must start with placement[{i}][{e}] "
                                 f"(device {int(placement[i, e])})", list(copies))
            out[i, e, :len(copies)] = copies
    return out


def route_array(value, replicas: np.ndarray, J: int) -> np.ndarray:
    """``[I, J, E]`` int64 route: each entry -1 (the split rule decides) or a device
    holding a copy of the expert. Errors name the field: ``route[i][j][e]``."""
    I, E, _ = replicas.shape
    try:
        route = np.asarray(value)
    except (TypeError, ValueError):
        route = np.zeros(0)
    if route.shape != (I, J, E) or route.dtype.kind not in "iu":
        raise InputError("route", f"must be an [{I}][{J}][{E}] array of device ids or -1")
    route = route.astype(np.int64)
    held = (route[..., None] == replicas[:, None, :, :]).any(axis=-1)
    bad = (route != -1) & ~held
    if bad.any():
        i, j, e = (int(x) for x in np.argwhere(bad)[0])
        raise InputError(f"route[{i}][{j}][{e}]", f"is not a device holding expert {e} "
                         f"of layer {i} ({replica_lists(replicas)[i][e]})", int(route[i, j, e]))
    return route


def replica_lists(replicas: np.ndarray) -> list:
    """``[I][E]`` lists of device ids (the document form) of a padded array."""
    return [[[int(k) for k in copies if k >= 0] for copies in row] for row in replicas]


def copies_per_device(replicas: np.ndarray, devices: int) -> np.ndarray:
    """``[I, U]``: copies of each layer's experts on each device (each uses capacity)."""
    I = replicas.shape[0]
    i, _, r = np.nonzero(replicas >= 0)
    k = replicas[i, _, r]
    return np.bincount(i * devices + k, minlength=I * devices).reshape(I, devices)


def split_route(replicas: np.ndarray, q: np.ndarray) -> np.ndarray:
    """The split rule (module docstring): ``route[..., i, j, e]``, the device serving
    each selected pair of mask ``q`` ``[..., I, J, E]`` (batches on leading axes,
    ranked within each), ``-1`` where not selected."""
    n_copies = (replicas >= 0).sum(axis=-1)                         # [I, E]
    primary = replicas[:, :, 0]
    group = (primary[:, :, None] == primary[:, None, :]).astype(np.int64)   # [I, E, E]
    to_group = np.einsum("...ijf,ife->...ije", q.astype(np.int64), group) > 0
    rank = np.cumsum(to_group, axis=-2, dtype=np.int64) - 1         # [..., I, J, E]
    count = np.maximum(to_group.sum(axis=-2, keepdims=True, dtype=np.int64), 1)
    copy = rank * n_copies[:, None, :] // count                     # [..., I, J, E]
    I, _, E = q.shape[-3:]
    device = replicas[np.arange(I)[:, None, None], np.arange(E)[None, None, :],
                      np.clip(copy, 0, None)]
    return np.where(q, device, -1)


def route_loads(route: np.ndarray, devices: int) -> tuple[np.ndarray, np.ndarray]:
    """Loads ``(u, p)`` of eq. 9, each ``[..., I, U]`` int64, of a route ``[..., I, J, E]``:
    ``p`` the pairs routed to each device, ``u`` the distinct tokens sent there."""
    lead = route.shape[:-2]
    J = route.shape[-2]
    flat = route.reshape(-1, J, route.shape[-1])                    # [M, J, E]
    m, j, e = np.nonzero(flat >= 0)
    key = m * devices + flat[m, j, e]
    M = flat.shape[0]
    p = np.bincount(key, minlength=M * devices).reshape(lead + (devices,))
    sent = np.unique(key * J + j)                                    # distinct (m, k, j)
    u = np.bincount(sent // J, minlength=M * devices).reshape(lead + (devices,))
    return u, p
