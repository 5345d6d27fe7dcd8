"""``p2/exact`` before and after issue 17's speed-up, per layer, one run.

    .venv/bin/python benchmarks/p2_exact_kernel.py --seed 0 --layers 0-7

Paper preset (``wdmoe-sim``: 1024 tokens x 8 experts on 8 devices, Top-K support, uniform
split). Each layer is solved three times in this process, alternating, from the same warm
start: ``before`` (numpy tables, a sort per row, Polyak step scale 1: the method before
the speed-up), ``compiled`` (the compiled tables of ``_p2kernel.c``, scale 1: the same
boxes, the tables agree to round-off) and ``now`` (compiled, scale ``STEP_SCALE`` = 2).
All three must prove the same value. The CPU seconds (``time.process_time``, one
process), boxes and the speed-up of ``now`` over ``before`` are printed and written to
``docs/figures/p2_exact_kernel.{csv,md}``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
from p2_selection import _save
from tqdm import tqdm

from wdmoe_opt import SelectionProblem
from wdmoe_opt.generate import generate
from wdmoe_opt.selection import exact
from wdmoe_opt.selection.common import LayerTimes
from wdmoe_opt.selection.milp import silence_highs_banner, warm_start_masks


def _solve(problem: SelectionProblem, i: int, start) -> tuple[float, float, float, int]:
    """One layer of ``p2/exact``: (CPU s, proven WLR, bound, boxes)."""
    times, allowed = LayerTimes(problem), problem.allowed_mask()
    inst = problem.instance
    cpu = time.process_time()
    layer = exact._Layer(inst.gating_weights[i], allowed[i], times.comm[i] + times.comp)
    x, bound, status, boxes = exact.solve_layer(layer, start[layer.tok, layer.dev],
                                                time.perf_counter() + 3600, exact.ExactOptions())
    if status != "optimal":
        raise RuntimeError(f"layer {i} not proven ({status})")
    return time.process_time() - cpu, layer.value(x), bound, boxes


def run(seed: int, layers: list[int]) -> pd.DataFrame:
    silence_highs_banner()
    kernel = exact._p2kernel
    if kernel is None:
        raise SystemExit("the compiled p2 kernel is not built (make install)")
    problem = SelectionProblem(generate("wdmoe-sim", seed=seed))
    starts = warm_start_masks(problem)
    rows = []
    for i in tqdm(layers, desc="layers"):
        row = {"seed": seed, "layer": i}
        for name, module, scale in (("before", None, 1.0), ("compiled", kernel, 1.0),
                                    ("now", kernel, exact.STEP_SCALE)):
            exact._p2kernel, saved, exact.STEP_SCALE = module, exact.STEP_SCALE, scale
            try:
                cpu, wlr, bound, boxes = _solve(problem, i, starts[i])
            finally:
                exact._p2kernel, exact.STEP_SCALE = kernel, saved
            row |= {f"cpu_s_{name}": cpu, f"wlr_{name}": wlr, f"boxes_{name}": boxes}
        row["speed_up"] = row["cpu_s_before"] / row["cpu_s_now"]
        rows.append(row)
        print(row, flush=True)
    df = pd.DataFrame(rows)
    total = {"seed": seed, "layer": "all", **{c: df[c].sum() for c in df.columns
                                              if c.startswith(("cpu_s", "boxes"))}}
    total["speed_up"] = total["cpu_s_before"] / total["cpu_s_now"]
    print(f"CPU s, {len(layers)} layers: before {total['cpu_s_before']:.1f}, compiled tables "
          f"{total['cpu_s_compiled']:.1f}, now {total['cpu_s_now']:.1f} "
          f"({total['speed_up']:.2f}x)")
    return pd.concat([df, pd.DataFrame([total])], ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layers", default="0-7", help="first-last (inclusive)")
    args = ap.parse_args()
    a, b = (int(x) for x in args.layers.split("-"))
    _save(run(args.seed, list(range(a, b + 1))), "exact_kernel")


if __name__ == "__main__":
    main()
