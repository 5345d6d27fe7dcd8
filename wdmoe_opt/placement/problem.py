"""P5, expert placement (SPEC §7): the problem object, traces and capacities.

A *trace* is one instance whose ``J`` tokens are ``n_batches`` consecutive batches
of ``batch_tokens`` tokens each, all for one system and one model (several files
of the same system are joined by :func:`concat_batches`). The P5 objective is the
mean over the batches of the batch latency (eq. 13) under the placement, the
policy's selection and, per batch, the optimal bandwidth (P3, eqs. 19-21): the
base station re-allocates the bandwidth for every batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..model import Instance, Selection
from ..model.instance import (
    capacity_array,
    capacity_per_layer,
    experts_per_device,
    placement_array,
)
from ..model.replicas import copies_per_device, replicas_array

POLICIES = ("topk",)

#: The methods that place more than one copy of an expert (``max_replicas > 1``).
REPLICATING = ("p5/local-search", "p5/milp")


@dataclass(frozen=True, eq=False)
class PlacementProblem:
    """P5: choose ``placement[i, e]`` (device of expert ``e`` of layer ``i``) to minimize
    the mean batch latency over a trace, with optimal bandwidth per batch.

    Parameters
    ----------
    instance : Instance
        The training trace (its own ``placement`` is ignored: it is the decision).
    batch_tokens : int, optional
        Tokens per batch; must divide ``J``. ``None``: the whole trace is one batch.
    capacity_experts : int or array [U] or [I, U], optional
        Most experts of one layer a device may host. ``None``: the instance's
        capacities if it has any (``capacity_experts`` and ``capacity_bytes``,
        :attr:`~wdmoe_opt.model.Instance.capacity_limit`), else no limit (``E``).
    selection : Selection, optional
        The selection policy's choice on the trace (fixed while the placement
        moves). ``None``: the router's Top-K (the default policy).
    max_replicas : int, optional
        Most copies of one expert (1: no replication). Each copy uses capacity on
        its device; tokens go to the copies by the split rule
        (:mod:`wdmoe_opt.model.replicas`). Only the :data:`REPLICATING` methods
        replicate.
    """

    instance: Instance
    batch_tokens: int | None = None
    capacity_experts: object = None
    selection: Selection | None = None
    max_replicas: int = 1
    key = "p5"

    def __post_init__(self):
        inst = self.instance
        I, J, E = inst.gating_weights.shape
        U = inst.n_devices
        jb = J if self.batch_tokens is None else self.batch_tokens
        if isinstance(jb, bool) or not isinstance(jb, (int, np.integer)) or jb < 1 or J % jb:
            raise InputError("batch_tokens", f"must be a positive divisor of the trace's "
                             f"{J} tokens", self.batch_tokens)
        object.__setattr__(self, "batch_tokens", int(jb))
        cap = self.capacity_experts
        own = inst.capacity_limit
        if cap is None:
            cap = np.full((I, U), E, dtype=np.int64) if own is None else np.array(own)
        else:
            raw = np.asarray(cap)
            if raw.ndim == 0:
                if raw.dtype.kind not in "iu" or raw < 1:
                    raise InputError("capacity_experts", "must be a positive integer", cap)
                raw = np.full(U, int(raw))
            cap = np.array(capacity_per_layer(capacity_array(raw, U), I))
            if cap.shape[0] != I:
                raise InputError("capacity_experts", f"per-layer capacities need one row "
                                 f"per layer ({I})", cap.shape)
            if own is not None and (cap > own).any():
                raise InputError("capacity_experts", "may only tighten the instance's own "
                                 "capacities (capacity_experts, capacity_bytes)",
                                 self.capacity_experts)
        short = np.minimum(cap, E).sum(axis=1) < E
        if short.any():
            i = int(np.argmax(short))
            field = ("capacity_experts" if self.capacity_experts is not None
                     else "system.devices[*].capacity_experts / capacity_bytes")
            raise InputError(field, f"leaves layer {i} without room for its "
                             f"{E} experts (total capacity {int(cap[i].sum())})")
        cap.setflags(write=False)
        object.__setattr__(self, "capacity_experts", cap)
        r = self.max_replicas
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or not 1 <= r <= U:
            raise InputError("max_replicas", f"must be an integer in 1..{U} (the devices)", r)
        object.__setattr__(self, "max_replicas", int(r))
        if self.selection is not None and self.selection.shape != (I, J, E):
            raise InputError("selection", f"must have shape [{I}][{J}][{E}]",
                             self.selection.shape)

    @property
    def n_batches(self) -> int:
        return self.instance.n_tokens // self.batch_tokens

    @property
    def capacity(self) -> np.ndarray:
        """``[I, U]`` int: the capacities in force (``E`` where unlimited)."""
        return self.capacity_experts  # type: ignore[return-value]

    @property
    def mask(self) -> np.ndarray:
        """``[I, J, E]``: the policy's selection on the trace."""
        sel = self.selection if self.selection is not None else Selection.topk(self.instance)
        return sel.mask

    def batch_masks(self) -> np.ndarray:
        """``[n_batches, I, batch_tokens, E]``: the selection cut into batches (a view)."""
        I, J, E = self.mask.shape
        return self.mask.reshape(I, self.n_batches, self.batch_tokens, E).transpose(1, 0, 2, 3)

    def batch_instance(self, n: int, placement: np.ndarray, replicas: np.ndarray | None = None,
                       route: np.ndarray | None = None) -> Instance:
        """Batch ``n`` as an instance of its own under ``placement`` (and ``replicas``,
        its ``route`` ``[I, Jb, E]`` if given; no capacity field: the problem's
        capacities were checked on them already)."""
        inst = self.instance
        sl = slice(n * self.batch_tokens, (n + 1) * self.batch_tokens)
        system = inst.system
        if inst.capacity_limit is not None:
            system = dataclasses.replace(system, capacity_experts=None, capacity_bytes=None)
        return Instance(name=f"{inst.name}#batch{n}", model=inst.model, system=system,
                        gating_weights=inst.gating_weights[:, sl], placement=placement,
                        provenance=inst.provenance, replicas=replicas, route=route)

    def check_placement(self, placement) -> np.ndarray:
        """``placement`` as a validated ``[I, E]`` int array respecting the capacities."""
        inst = self.instance
        pl = placement_array(placement, inst.n_layers, inst.n_experts, inst.n_devices)
        self._check_hosted(experts_per_device(pl, inst.n_devices), "placement")
        return pl

    def refuse_replicas(self, method: str) -> None:
        """An :class:`InputError` when replication is asked of ``method``, which places
        one copy per expert (the :data:`REPLICATING` methods replicate)."""
        if self.max_replicas > 1:
            raise InputError("max_replicas", f"{method} places one copy per expert; "
                             f"replication is searched by {' and '.join(REPLICATING)}",
                             self.max_replicas)

    def check_replicas(self, placement: np.ndarray, replicas) -> np.ndarray:
        """``replicas`` of ``placement`` as a validated ``[I, E, R]`` array: at most
        ``max_replicas`` copies, every copy within the capacities."""
        inst = self.instance
        rep = replicas_array(replicas, placement, inst.n_layers, inst.n_experts,
                             inst.n_devices)
        n = (rep >= 0).sum(axis=-1)
        if (n > self.max_replicas).any():
            i, e = (int(x) for x in np.argwhere(n > self.max_replicas)[0])
            raise InputError(f"replicas[{i}][{e}]", f"has more than max_replicas "
                             f"({self.max_replicas}) copies", int(n[i, e]))
        self._check_hosted(copies_per_device(rep, inst.n_devices), "replicas")
        return rep

    def _check_hosted(self, hosted: np.ndarray, field: str) -> None:
        over = hosted > self.capacity
        if over.any():
            i, k = (int(x) for x in np.argwhere(over)[0])
            raise InputError(f"{field}[{i}]", f"puts more experts on device {k} than its "
                             f"capacity ({int(self.capacity[i, k])})")


def split_batches(instance: Instance, batch_tokens: int, first: int, count: int) -> Instance:
    """Batches ``first .. first + count - 1`` of a trace as one instance (a held-out
    or training part)."""
    sl = slice(first * batch_tokens, (first + count) * batch_tokens)
    if count < 1 or sl.stop > instance.n_tokens:
        raise InputError("batches", f"must lie within the trace's "
                         f"{instance.n_tokens // batch_tokens} batches", (first, count))
    return instance.replace(name=f"{instance.name}[b{first}:{first + count}]",
                            gating_weights=instance.gating_weights[:, sl])


def concat_batches(instances: list[Instance], name: str | None = None) -> Instance:
    """Join instances of one system and model (each a batch or several) into one trace.

    The system, model and placement must be identical (compared by the content
    hash of the instance with its gating removed); the gating arrays are joined
    along the token axis.
    """
    if not instances:
        raise InputError("instances", "must list at least one instance")
    first = instances[0]

    def key(inst: Instance) -> str:
        return inst.replace(gating_weights=np.full((inst.n_layers, 1, inst.n_experts),
                                                   1.0 / inst.n_experts)).content_hash

    ref = key(first)
    for n, inst in enumerate(instances[1:], start=1):
        if key(inst) != ref:
            raise InputError(f"instances[{n}]", "differs from instances[0] in its system, "
                             "model or placement", inst.name)
    w = np.concatenate([inst.gating_weights for inst in instances], axis=1)
    return first.replace(name=name or first.name + f"+{len(instances) - 1}",
                         gating_weights=w)
