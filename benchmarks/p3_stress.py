"""P3 robustness sweep: ``p3/exact`` on random instances far outside the paper's setting.

Each instance draws its sizes (1-40 layers, 2-40 devices, 1-300 tokens, Top-1..4,
identity or shared placement, slow or fast fading) and its system over many orders
of magnitude (total bandwidth 10 kHz-10 GHz, base-station power 1 mW-1 kW, device
power 0.1 mW-10 W, distances 1 m-10 km, device compute 1 GFLOP/s-1 PFLOP/s). It
counts the statuses, reports the worst certified gap and iteration count, and lists
every instance that is not ``optimal`` with its parameters, so that it can be rebuilt.

    .venv/bin/python benchmarks/p3_stress.py --trials 400 --seed 123
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from wdmoe_opt import BandwidthProblem, InputError, Selection, solve
from wdmoe_opt.generate import generate


def draw(rng: np.random.Generator) -> dict:
    """Generator parameters of one random instance."""
    devices = int(rng.integers(2, 40))
    experts = devices * int(rng.integers(1, 3))
    params = dict(
        layers=int(rng.integers(1, 40)), tokens=int(rng.integers(1, 300)), devices=devices,
        experts=experts, top_k=int(rng.integers(1, min(experts, 4) + 1)),
        total_bandwidth_hz=float(10 ** rng.uniform(4, 10)),
        bs_power_w=float(10 ** rng.uniform(-3, 3)),
        device_power_w=float(10 ** rng.uniform(-4, 1)),
        distance_min_m=float(10 ** rng.uniform(0, 2)),
        distance_max_m=float(10 ** rng.uniform(2, 4)),
        fast_fading=bool(rng.integers(0, 2)),
        compute_min_flops=float(10 ** rng.uniform(9, 12)),
        compute_max_flops=float(10 ** rng.uniform(12, 15)),
        popularity_skew=float(rng.uniform(0, 3)))
    if experts != devices:
        params["placement"] = "round-robin"
    return params


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=400)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    statuses, worst_gap, worst_iterations, failures = collections.Counter(), 0.0, 0, []
    start = time.perf_counter()
    for trial in range(args.trials):
        params = draw(rng)
        try:
            inst = generate("wdmoe-sim", seed=trial, **params)
        except InputError:      # a draw the generator rejects (e.g. distances inverted)
            continue
        sol = solve(BandwidthProblem(inst, Selection.topk(inst)), "exact")
        statuses[str(sol.status)] += 1
        worst_iterations = max(worst_iterations, sol.extra.get("iterations", 0))
        if sol.gap is not None:
            worst_gap = max(worst_gap, sol.gap)
        if str(sol.status) != "optimal":
            failures.append((trial, str(sol.status), sol.gap, params))
    print(f"{sum(statuses.values())} instances in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
          + f"; worst certified gap {worst_gap:.1e}, worst iterations {worst_iterations}")
    for trial, status, gap, params in failures:
        print(f"  seed {trial}: {status}, gap {gap:.1e}, {params}")


if __name__ == "__main__":
    main()
