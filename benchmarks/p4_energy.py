"""P4 (SiftMoE, SPEC §6): energy vs deviation budget, the DP vs the equal split,
speed, MILP limits, and the deviation bound against measured layer outputs.

    .venv/bin/python benchmarks/p4_energy.py curves [--deadline topk|preset]   # ~4 min
    .venv/bin/python benchmarks/p4_energy.py speed    # decode 32 layers, relax 32x1024x8
    .venv/bin/python benchmarks/p4_energy.py speed --before main   # alternating with main
    .venv/bin/python benchmarks/p4_energy.py answers --before main # same answers as main?
    .venv/bin/python benchmarks/p4_energy.py milp     # largest prefill MILP proved in 60 s
    .venv/bin/python benchmarks/p4_energy.py compact  # wdmoe-sift-32: slot MILP, decode + prefill
    .venv/bin/python benchmarks/p4_energy.py bound    # torch: bound vs measured (torch extra)

Each part writes ``docs/figures/p4_<part>.{csv,md}`` (and a ``.png`` where there is a
figure); docs/energy.md quotes them. Every number is recomputed by the one evaluator.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _tables import markdown_table  # noqa: E402
from rich.progress import track  # noqa: E402

from wdmoe_opt.energy import EnergyProblem  # noqa: E402
from wdmoe_opt.energy.candidates import Candidates  # noqa: E402
from wdmoe_opt.energy.exact import decode_exact  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402
from wdmoe_opt.model import Selection  # noqa: E402
from wdmoe_opt.model import latency as lat  # noqa: E402
from wdmoe_opt.registry import get_method  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"
BUDGETS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
PREFILL_TOKENS = 32
METHODS = {"topk": {}, "wdmoe": {}, "skip-threshold": {"beta": 0.5}, "substitute": {},
           "exact": {}, "relax": {}, "joint-bandwidth": {}, "fast-fading": {"draws": 500}}


def _instance(seed: int, decode: bool, fast: bool, deadline: str):
    """``deadline="preset"``: SiftMoE's 0.074 s per layer (decode; prefill: the median
    Top-K layer latency, SiftMoE's prefill deadline being unknown); ``"topk"``: 5 %
    above the slowest Top-K layer at the uniform split, so that every baseline is
    feasible and the curves compare energies."""
    inst = generate("wdmoe-sift", seed=seed, tokens=1 if decode else PREFILL_TOKENS,
                    fast_fading=fast)
    top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
    if deadline == "topk":
        return inst.replace(deadlines_s=float(top.max() * 1.05))
    return inst if decode else inst.replace(deadlines_s=float(np.median(top)))


def part_curves(seeds=range(3), deadline: str = "topk") -> pd.DataFrame:
    """Energy vs the global deviation budget for every method (deadline fixed)."""
    rows = []
    panels = [(d, f) for d in (True, False) for f in (False, True)]
    jobs = [(d, f, s, e) for d, f in panels for s in seeds for e in BUDGETS]
    for decode, fast, seed, eps in track(jobs, description="p4 curves"):
        inst = _instance(seed, decode, fast, deadline)
        problem = EnergyProblem(inst, eps)
        for name, opts in METHODS.items():
            if (name == "exact" and not decode) or (name == "relax" and decode) or (
                    name == "fast-fading" and not fast):
                continue
            sol = get_method(f"p4/{name}")(problem, opts)
            rows.append({"mode": "decode" if decode else f"prefill J={PREFILL_TOKENS}",
                         "fading": "fast" if fast else "slow", "seed": seed, "budget": eps,
                         "deadline": deadline, "method": name, "status": str(sol.status),
                         "energy_j": sol.extra["energy_j"],
                         "dp_saving": sol.extra.get("dp_saving"),
                         "uplink_dp_j": sol.extra.get("uplink_energy_dp_j"),
                         "uplink_equal_j": sol.extra.get("uplink_energy_equal_j"),
                         "time_s": sol.solve_time_s})
    df = pd.DataFrame(rows)
    _plot_curves(df, deadline)
    return df


def _plot_curves(df: pd.DataFrame, deadline: str) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    for ax, ((mode, fading), g) in zip(axes.ravel(), df.groupby(["mode", "fading"],
                                                                 sort=False), strict=True):
        for name, m in g.groupby("method", sort=False):
            ok = m.assign(e=np.where(m.status.isin(["optimal", "feasible"]), m.energy_j,
                                     np.nan))
            # a point is drawn where every seed is feasible: the mean energy over seeds
            curve = ok.groupby("budget").e.agg(lambda x: x.mean() if x.notna().all()
                                               else np.nan)
            ax.plot(curve.index, curve.values, marker="o", label=name)
        ax.set_title(f"{mode}, {fading} fading")
        ax.set_yscale("symlog", linthresh=1e-2)
        ax.legend(fontsize=7)
        ax.set_xlabel("global deviation budget ε")
        ax.set_ylabel("energy per batch (J), feasible points")
        ax.grid(alpha=0.3)
    when = ("deadline 1.05 x slowest Top-K layer" if deadline == "topk"
            else "SiftMoE's deadline 0.074 s (prefill: median Top-K layer)")
    fig.suptitle(f"wdmoe-sift (Mixtral 8x7B top-2, 2 MHz), {when}: energy vs deviation "
                 "budget\n(mean of 3 seeds; a point is missing where some seed is infeasible)")
    fig.tight_layout()
    fig.savefig(OUT / f"p4_curves_{deadline}.png", dpi=120)


def _calibration_s() -> float:
    """Seconds of one reference numpy operation (1M-element add): the run's unit."""
    x = np.random.default_rng(0).random(1_000_000)
    t = []
    for _ in range(30):
        t0 = time.perf_counter()
        x + x  # noqa: B018
        t.append(time.perf_counter() - t0)
    return float(np.median(t))


def _times(fn, repeats: int) -> dict:
    """Median and best wall seconds of ``fn`` over ``repeats`` runs (the best is the
    figure least disturbed by other load on a shared machine), with the median CPU
    seconds of the process (all its threads) and of the calling thread: on a busy
    machine these, not the wall, compare code."""
    wall, cpu, thread = [], [], []
    for _ in range(repeats):
        t0, c0, h0 = time.perf_counter(), time.process_time(), time.thread_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        thread.append(time.thread_time() - h0)
    return {"time_s": float(np.median(wall)), "best_s": float(np.min(wall)),
            "cpu_s": float(np.median(cpu)), "thread_s": float(np.median(thread))}


def part_speed() -> pd.DataFrame:
    """Decode step (32 layers) and paper-scale prefill, with the run's calibration unit."""
    unit = _calibration_s()
    dec = EnergyProblem(generate("wdmoe-sift", seed=0), 1.5)
    rows = [{"case": "decode step (tables + enumeration), 32 layers x (E+1)^K = 81",
             **_times(lambda: decode_exact(Candidates.build(dec)), 500), "target_s": 1e-3},
            {"case": "p4/exact decode incl. the Solution",
             **_times(lambda: get_method("p4/exact")(dec), 100), "target_s": None}]
    inst = generate("wdmoe-sift", seed=0, tokens=1024, total_bandwidth_hz=20e6)
    top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
    relax = get_method("p4/relax")
    for frac in (1.0, 0.6):
        problem = EnergyProblem(inst, 1.5, deadlines_s=float(np.median(top) * frac))
        sol = relax(problem)
        rows.append({"case": f"p4/relax 32x1024x8, deadline {frac} x median Top-K layer, "
                             f"{sol.extra['layers_relaxed']} layers relaxed, "
                             f"gap {sol.extra['energy_gap']:.2e}, {sol.status}",
                     **_times(lambda p=problem: relax(p), 9), "target_s": 0.1})
    df = pd.DataFrame(rows)
    df["ratio_to_unit"] = df.time_s / unit
    df["best_ratio_to_unit"] = df.best_s / unit
    df["unit_s"] = unit
    df["load_avg_1min"] = os.getloadavg()[0]
    return df


def part_answers() -> pd.DataFrame:
    """A digest of every answer on a grid of instances, for comparing two revisions:
    ``p4/relax`` on 108 runs (seeds 0-5, 16-1024 tokens, slow and fast fading, a shared
    placement, a top-3 model, three budgets, three deadlines, all and 2 replacements),
    the MILP columns of some layers, and ``p4/exact`` decode. Floats as ``repr``
    (exact), arrays as SHA-256 of their bytes."""
    import hashlib

    from wdmoe_opt.energy.layer import layer_choices

    def digest(*arrays) -> str:
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]

    rows = []
    cases = [(0, 16, False, {}), (1, 64, False, {}), (2, 256, True, {}), (3, 1024, False, {}),
             (4, 128, False, {"devices": 4, "placement": "round-robin"}),
             (5, 64, True, {"top_k": 3, "experts": 6, "devices": 6})]
    relax = get_method("p4/relax")
    for seed, J, fast, extra in track(cases, description="p4 answers"):
        inst = generate("wdmoe-sift", seed=seed, tokens=J, fast_fading=fast, **extra)
        top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
        for eps in (0.0, 0.5, 1.5):
            for frac in (1.0, 0.6, 0.4):
                problem = EnergyProblem(inst, eps, deadlines_s=float(np.median(top) * frac))
                for repl in (None, 2):
                    sol = relax(problem, {} if repl is None else {"replacements": repl})
                    x = sol.extra
                    rows.append({"run": f"relax seed={seed} J={J} eps={eps} frac={frac} "
                                        f"replacements={repl}",
                                 "status": str(sol.status), "energy_j": repr(x["energy_j"]),
                                 "bound_j": repr(x.get("energy_lower_bound_j")),
                                 "digest": digest(x["actions"], x["deviation_max"],
                                                  sol.layer_latency_s, x["layer_energy_j"])})
                if eps == 1.5:
                    cand = Candidates.build(problem)
                    cols = [layer_choices(cand, i) for i in range(0, inst.n_layers, 7)]
                    rows.append({"run": f"tables seed={seed} J={J} frac={frac}",
                                 "digest": digest(cand.energy, cand.deviation, cand.allowed,
                                                  *(a for lc in cols for a in (
                                                      lc.token, lc.profile, lc.set_id,
                                                      lc.energy, lc.time)))})
    for seed in range(4):
        for eps in (0.0, 0.5, 1.5):
            sol = get_method("p4/exact")(EnergyProblem(generate("wdmoe-sift", seed=seed), eps))
            rows.append({"run": f"exact decode seed={seed} eps={eps}",
                         "status": str(sol.status), "energy_j": repr(sol.extra["energy_j"]),
                         "digest": digest(sol.extra["actions"])})
    return pd.DataFrame(rows)


def against(ref: str, part: str, rounds: int) -> pd.DataFrame:
    """``part`` (``speed`` or ``answers``) of the git revision ``ref`` (*before*) and of
    this checkout (*after*), each in its own process, alternately (before, after,
    before, after, ...), so that both see the same load; the rows of every run with
    its side and round."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(root), "archive", ref], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        for so in (root / "wdmoe_opt").rglob("*.so"):       # compiled kernels: untracked
            shutil.copy(so, before / so.relative_to(root))
        runs = []
        for k in range(rounds):
            for side, tree in (("before", before), ("after", root)):
                out = Path(tmp) / f"{side}{k}.json"
                env = {**os.environ, "PYTHONPATH": str(tree)}
                subprocess.run([sys.executable, __file__, part, "--json", str(out)],
                               check=True, env=env, cwd=tree)
                df = pd.read_json(out, dtype=False)
                df["side"], df["round"] = side, k
                runs.append(df)
    df = pd.concat(runs, ignore_index=True)
    df["ref"] = ref
    return df


def answers_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Runs whose answers (status, energy, bound, digest) differ between the sides."""
    cols = [c for c in ("status", "energy_j", "bound_j", "digest") if c in df]
    b, a = (df[df.side == s].set_index("run")[cols].fillna("-").astype(str)
            for s in ("before", "after"))
    differ = (b != a).any(axis=1)
    return pd.DataFrame([{"runs": len(b), "identical": int((~differ).sum()),
                          "differing": ", ".join(b.index[differ]) or "none",
                          "ref": df.ref.iloc[0]}])


def speed_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per case and side: each round's median wall and thread milliseconds (best wall
    in brackets) and the process CPU, rounds separated by ``/``."""
    out = []
    def ms(g, col):
        return " / ".join(f"{1e3 * v:.3g}" for v in g[col])

    for (case, side), g in df.groupby(["case", "side"], sort=False):
        out.append({"case": case, "side": side,
                    "wall_ms": f"{ms(g, 'time_s')} ({ms(g, 'best_s')})",
                    "cpu_ms": ms(g, "cpu_s"), "thread_ms": ms(g, "thread_s"),
                    "load_avg": " / ".join(f"{v:.2f}" for v in g.load_avg_1min)})
    return pd.DataFrame(out)


def _binding_problem(inst, relax_options: dict | None = None) -> tuple[EnergyProblem, float]:
    """P4 with eps = 1.5 and the tightest deadline (a fraction of the fastest Top-K
    layer) at which ``p4/relax`` (with ``relax_options``) finds a feasible point and
    some layer binds."""
    top = lat.layer_latency_s(inst, Selection.topk(inst), lat.uniform_bandwidth_hz(inst))
    for frac in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        problem = EnergyProblem(inst, 1.5, deadlines_s=float(top.min() * frac))
        sol = get_method("p4/relax")(problem, relax_options)
        if sol.status in ("optimal", "feasible") and sol.extra["layers_relaxed"] > 0:
            return problem, frac
    return problem, frac


def part_milp(limit_s: float = 60.0) -> pd.DataFrame:
    """The largest prefill (2 layers, J tokens) each MILP route proves within 60 s, at a
    binding deadline; ``p4/relax`` beside it."""
    rows = []
    for route in ("milp-highspy", "milp-pyomo"):
        for J in track((16, 32, 64, 128, 256, 512, 1024, 2048), description=route):
            problem, frac = _binding_problem(generate("wdmoe-sift", seed=0, tokens=J,
                                                      layers=2))
            t0 = time.perf_counter()
            sol = get_method(f"p4/{route}")(problem, {"time_limit": limit_s})
            wall = time.perf_counter() - t0
            relax = get_method("p4/relax")(problem)
            rows.append({"route": route, "tokens": J, "deadline_frac": frac,
                         "status": str(sol.status), "wall_s": wall,
                         "energy_j": sol.extra["energy_j"],
                         "relax_status": str(relax.status),
                         "relax_energy_j": relax.extra["energy_j"],
                         "relax_gap": relax.extra["energy_gap"],
                         "relax_time_s": relax.solve_time_s})
            if sol.status != "optimal":
                break
    return pd.DataFrame(rows)


def _compact_row(problem: EnergyProblem, limit_s: float, warm_start: bool = False) -> dict:
    """``p4/milp-compact`` (wall, CPU, status, energy, bound) against ``p4/relax``
    restricted to 4 replacements (the profile methods refuse the full action space)."""
    t0, c0 = time.perf_counter(), time.process_time()
    sol = get_method("p4/milp-compact")(problem, {"time_limit": limit_s,
                                                  "warm_start": warm_start})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    relax = get_method("p4/relax")(problem, {"replacements": 4})
    return {"warm_start": warm_start, "status": str(sol.status), "wall_s": wall, "cpu_s": cpu,
            "energy_j": sol.extra["energy_j"], "bound_j": sol.extra["energy_lower_bound_j"],
            "relax4_status": str(relax.status), "relax4_energy_j": relax.extra["energy_j"],
            "relax4_time_s": relax.solve_time_s}


def part_compact(limit_s: float = 60.0) -> pd.DataFrame:
    """``wdmoe-sift-32`` (32 experts, top-4: 33^4 profiles per token) through the
    slot-based MILP: the decode step (1 token, all 24 layers, the preset's 0.35 s
    deadline) on 5 seeds, then prefill (1 layer, J tokens, the tightest binding
    deadline) for J = 4 .. 512 within ``limit_s`` each; last, 1024 tokens (paper scale)
    at the time limit, without and with the warm start."""
    rows = []
    for seed in track(range(5), description="decode"):
        problem = EnergyProblem(generate("wdmoe-sift-32", seed=seed), 1.5)
        rows.append({"mode": "decode", "seed": seed, "layers": 24, "tokens": 1,
                     "deadline_frac": None, **_compact_row(problem, limit_s)})
    # every size: the deadline fraction differs by size, so hardness is not monotone
    for J in track((4, 8, 16, 32, 64, 128, 256, 512), description="prefill"):
        problem, frac = _binding_problem(generate("wdmoe-sift-32", seed=0, tokens=J,
                                                  layers=1), {"replacements": 4})
        rows.append({"mode": "prefill", "seed": 0, "layers": 1, "tokens": J,
                     "deadline_frac": frac, **_compact_row(problem, limit_s)})
    problem, frac = _binding_problem(generate("wdmoe-sift-32", seed=0, tokens=1024, layers=1),
                                     {"replacements": 4})
    for warm in track((False, True), description="1024 tokens"):
        rows.append({"mode": "prefill", "seed": 0, "layers": 1, "tokens": 1024,
                     "deadline_frac": frac, **_compact_row(problem, limit_s, warm)})
    return pd.DataFrame(rows)


def part_bound(tokens: int = 64) -> pd.DataFrame:
    """Measured layer-output change vs the per-token bound and the table estimate."""
    import torch

    from wdmoe_opt.model.deviation import deviation, topk_experts
    from wdmoe_opt.torch import record_gating, recorded_instance, tiny_model, token_ids
    from wdmoe_opt.torch.models import load_model
    from wdmoe_opt.torch.similarity import measure_similarity, measured_deviation
    from wdmoe_opt.torch.zoo import calibration_ids, heldout_sequences

    torch.set_num_threads(1)
    rows = []
    for name in ("wdmoe-tiny-moe", "tiny-mixtral", "tiny-qwen2-moe", "tiny-olmoe"):
        if name == "wdmoe-tiny-moe":            # the trained model, on real text
            model = load_model(name)
            calib = calibration_ids(tokens)
            ids = heldout_sequences(model, name)[0, :tokens][None]   # held-out text
        else:
            model = tiny_model(name, seed=0)
            calib, _ = token_ids(model, tokens, seed=1)
            ids, _ = token_ids(model, tokens, seed=2)          # held-out tokens
        inst = recorded_instance(record_gating(model.model, ids), top_k=2,
                                 source=f"recorded:{name}", preset="wdmoe-sift", tokens=tokens)
        inst = inst.replace(similarity=measure_similarity(model.model, calib))
        for eps in (1.0, 3.0, 10.0):
            a = np.asarray(get_method("p4/relax")(EnergyProblem(inst, eps)).extra["actions"])[
                ..., 1]
            m = measured_deviation(model.model, ids, a)
            table_w = deviation(inst, a)
            changed = (a != topk_experts(inst)).any(axis=-1)
            w = np.take_along_axis(inst.gating_weights, topk_experts(inst), axis=2)
            # the same tables with the model's mixing weights g (Top-K renormalized)
            table_g = _deviation_with(inst, a, m["gate"] / w)
            for i, j in zip(*np.nonzero(changed), strict=True):
                rows.append({"model": name, "budget": eps, "layer": int(i), "token": int(j),
                             "measured": m["measured"][i, j], "bound": m["bound"][i, j],
                             "table_w": table_w[i, j], "table_g": table_g[i, j]})
    df = pd.DataFrame(rows)
    _plot_bound(df)
    return df


def _deviation_with(inst, actions, scale):
    """Table estimate with each slot's weight multiplied by ``scale`` ``[I, J, K]``."""
    from wdmoe_opt.model.deviation import topk_experts
    sim = inst.similarity
    e = topk_experts(inst)
    w = np.take_along_axis(inst.gating_weights, e, axis=2) * scale
    i = np.arange(inst.n_layers)[:, None, None]
    d = np.where(actions < 0, sim.skip[i, e], sim.replace[i, e, np.maximum(actions, 0)])
    return (w * d).sum(axis=-1)


def _plot_bound(df: pd.DataFrame) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, (col, title) in zip(axes, (("bound", "per-token bound (own expert outputs)"),
                                       ("table_g", "table estimate (calibration means)")),
                                strict=True):
        for name, g in df.groupby("model"):
            ax.scatter(g[col], g.measured, s=8, alpha=0.6, label=name)
        hi = float(max(df[col].max(), df.measured.max()))
        ax.plot([0, hi], [0, hi], "k--", lw=1)
        ax.set_xlabel(title)
        ax.set_ylabel("measured ||y - y'|| of the layer output")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("SiftMoE deviation: bound and estimate vs the measured change\n"
                 "(tiny random models, p4/relax actions; below the diagonal = not exceeded)")
    fig.tight_layout()
    fig.savefig(OUT / "p4_bound.png", dpi=120)


def bound_summary(df: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name, g in df.groupby("model"):
        for col in ("bound", "table_w", "table_g"):
            r = g.measured / g[col]
            out.append({"model": name, "against": col, "tokens": len(g),
                        "exceeded_share": float((g.measured > g[col] * (1 + 1e-6)).mean()),
                        "max_measured_over": float(r.max()),
                        "median_measured_over": float(r.median())})
    return pd.DataFrame(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["curves", "speed", "milp", "compact", "bound",
                                     "answers"])
    ap.add_argument("--deadline", choices=["topk", "preset"], default="topk",
                    help="curves: the deadline (see _instance)")
    ap.add_argument("--before", metavar="REF",
                    help="speed, answers: also run the git revision REF, alternately with "
                         "this checkout, each in its own process (p4_<part>_before_after)")
    ap.add_argument("--json", metavar="PATH", help=argparse.SUPPRESS)   # one side's rows
    args = ap.parse_args()
    if (args.before or args.json) and args.part not in ("speed", "answers"):
        ap.error("--before is for the speed and answers parts")
    parts = {"speed": part_speed, "milp": part_milp, "compact": part_compact,
             "bound": part_bound,
             "answers": part_answers}
    if args.json:
        parts[args.part]().to_json(args.json)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part == "curves":
        df = part_curves(deadline=args.deadline)
        args.part = f"curves_{args.deadline}"
    elif args.before:
        df = against(args.before, args.part, rounds=2 if args.part == "speed" else 1)
        args.part += "_before_after"
    elif args.part == "answers":
        ap.error("answers compares two revisions: give --before REF")
    else:
        df = parts[args.part]()
    df.to_csv(OUT / f"p4_{args.part}.csv", index=False)
    if args.part.startswith("curves"):
        show = df[df.fading == "fast"].dropna(subset=["dp_saving"])
        md = show.groupby("mode")[["uplink_dp_j", "uplink_equal_j", "dp_saving"]].mean()
        table = markdown_table(md.reset_index())
    elif args.part == "bound":
        table = markdown_table(bound_summary(df))
    elif args.part == "speed_before_after":
        table = markdown_table(speed_summary(df))
    elif args.part == "answers_before_after":
        table = markdown_table(answers_summary(df))
    else:
        table = markdown_table(df)
    (OUT / f"p4_{args.part}.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
