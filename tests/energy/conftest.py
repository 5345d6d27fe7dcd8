"""Tiny P4 instances and an independent brute force (SPEC §6)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from wdmoe_opt.energy import EnergyProblem
from wdmoe_opt.generate import generate
from wdmoe_opt.model import latency as lat


def tiny_sift(seed: int, tokens: int = 2, experts: int = 3, devices: int | None = None,
              **params):
    """A tiny ``wdmoe-sift`` instance: 2 layers, ``experts`` experts, top-2, one local
    device, a 1 s deadline (the tests set their own)."""
    base = dict(layers=2, tokens=tokens, experts=experts, devices=devices or experts,
                top_k=2, sim_clusters=2)
    if devices is not None and devices != experts:
        base["placement"] = "round-robin"
    base.update(params)
    return generate("wdmoe-sift", seed=seed, **base)


def token_profiles(E: int, K: int) -> np.ndarray:
    """``[P, K]`` every action tuple (-1 skip, else the invoked expert), no repeats."""
    rows = [p for p in itertools.product(range(-1, E), repeat=K)
            if len([x for x in p if x >= 0]) == len({x for x in p if x >= 0})]
    return np.array(rows, dtype=np.int64)


def brute_force(problem: EnergyProblem) -> tuple[float, np.ndarray]:
    """``(optimal energy, per-layer optimal energies)`` by enumerating every combination
    of every token's action tuple, scored with plain loops over experts (inf if a
    layer has no feasible combination)."""
    inst = problem.instance
    I, J, E = inst.gating_weights.shape
    K, U = inst.model.top_k, inst.n_devices
    sim = inst.similarity
    b = problem.bandwidth_hz
    c = lat.comm_time_per_token_s(inst, b)
    a = lat.compute_time_per_token_s(inst)
    e_tok = lat.transmit_energy_per_token_j(inst, b)
    e_cmp = lat.compute_energy_per_token_j(inst)
    profiles = token_profiles(E, K)
    per_layer = np.full(I, math.inf)
    for i in range(I):
        opts = []
        for j in range(J):
            top = sorted(np.argsort(-inst.gating_weights[i, j], kind="stable")[:K])
            w = inst.gating_weights[i, j]
            ok = []
            for prof in profiles:
                dev = 0.0
                for e, r in zip(top, prof, strict=True):
                    dev += w[e] * (sim.skip[i, e] if r < 0 else sim.replace[i, e, r])
                if dev <= problem.layer_budget[i] * (1 + 1e-9):
                    ok.append(prof)
            opts.append(ok)
        for combo in itertools.product(*opts):
            p = np.zeros(U)
            u = np.zeros(U)
            for prof in combo:
                devs = [int(inst.placement[i, r]) for r in prof if r >= 0]
                for k in devs:
                    p[k] += 1
                for k in set(devs):
                    u[k] += 1
            with np.errstate(invalid="ignore"):
                t = np.where(u > 0, u * c[i], 0.0) + p * a
            if t.max() > problem.layer_deadline[i] * (1 + 1e-9):
                continue
            energy = float((np.where(u > 0, u * e_tok[i], 0.0) + p * e_cmp).sum())
            per_layer[i] = min(per_layer[i], energy)
    return float(per_layer.sum()), per_layer


def deadline_between(instance, fraction: float) -> float:
    """A deadline ``fraction`` of the way from the fastest to the Top-K layer latency
    (``fraction`` 1: Top-K just fits; 0: nothing but the fastest choice)."""
    from wdmoe_opt.model import Selection
    b = lat.uniform_bandwidth_hz(instance)
    top = float(lat.layer_latency_s(instance, Selection.topk(instance), b).max())
    return max(top * fraction, 1e-6)
