"""Scale: each phase of a long recording's solve, from 1 024 to 131 072 tokens.

For every size it generates ``wdmoe-sim --seed 0 --tokens J`` (32 layers x 8 experts,
untimed), then measures in one run, as separate processes:

* the real CLI, end to end: ``solve s.npz --selection alg1 --bandwidth exact -o
  sol.npz`` and ``check s.npz sol.npz`` (also with ``sol.json`` up to ``--json-max``
  tokens): wall time, CPU time and peak resident memory (``wait4``), and the
  solver's own time (``solve_time_s`` of the written solution);
* the CLI's start-up alone (``solve --help``: interpreter, numpy and the commands'
  imports), which every command pays whatever the size;
* the phases inside one process (CPU seconds): read the instance, content hash,
  solve, evaluate (``Solution.evaluate`` again on the result), write ``.npz`` and
  ``.json``, read each back, check each.

Targets (issue 23): at >= 32 768 tokens the CLI solve takes at most 2x the
solver's own time; ``check`` takes at most the solve's wall time; at 131 072 tokens
every process peaks below 3x the gating array. The machine is shared, so the
ratios come from one run, and the phases are CPU times (less sensitive to other
processes than wall times).

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --out docs/figures

writes ``scale.csv`` and ``scale.png`` there and prints a Markdown table.

    PYTHONPATH=. .venv/bin/python benchmarks/scale.py --trace FOLDER --batch-size 32768

solves a long trace (an instance file, or a folder of them) as a stream of batches
(:mod:`wdmoe_opt.stream`, alg1 + exact, ``.npz`` results in a temporary folder) and
prints its wall and CPU time and its peak memory.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from wdmoe_opt.io import read_solution_dict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1024, 4096, 16384, 32768, 65536, 131072)
PHASES = ("read", "hash", "solve", "evaluate", "write_npz", "read_npz", "check_npz",
          "write_json", "read_json", "check_json")


def _run(args: list[str]) -> dict:
    """Run ``python -m wdmoe_opt ARGS`` (this checkout): wall s, CPU s, peak MB."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "wdmoe_opt", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wdmoe_opt {' '.join(args)} failed: {err}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024}


def _phases(instance_path: str, workdir: str) -> dict:
    """The in-process phases (CPU seconds), run in a child process (``--phases``)."""
    from wdmoe_opt.check import check_solution
    from wdmoe_opt.io import read_instance, write_solution
    from wdmoe_opt.model import Selection
    from wdmoe_opt.problems import JointProblem
    from wdmoe_opt.registry import get_method
    from wdmoe_opt.solution import Solution

    out: dict = {}

    def timed(name, f, *args):
        t = time.process_time()
        r = f(*args)
        out[name] = time.process_time() - t
        return r

    inst = timed("read", lambda: read_instance(instance_path))
    timed("hash", lambda: inst.content_hash)
    method = get_method("sequential", "p1")
    sol = timed("solve", lambda: method(JointProblem(inst), {"selection": "alg1",
                                                             "bandwidth": "exact"}))
    out["solver_own"] = sol.solve_time_s
    fresh = Selection(sol.selection.mask)   # no memoized loads: evaluate from scratch
    timed("evaluate", lambda: Solution.evaluate(inst, fresh, sol.bandwidth_hz,
                                                problem="p1", method=sol.method))
    for form in ("npz", "json"):
        path = Path(workdir) / f"phase_sol.{form}"
        timed(f"write_{form}", write_solution, sol, path)
        doc = timed(f"read_{form}", read_solution_dict, path)
        problems = timed(f"check_{form}", check_solution, inst, doc)
        if problems:
            raise RuntimeError(f"check of the {form} form failed: {problems[0]}")
    return out


def _trace(source: str, batch_size: int) -> dict:
    """Solve ``source`` as a stream (in this process; run as a child by ``--trace``)."""
    import resource

    from wdmoe_opt.problems import JointProblem
    from wdmoe_opt.registry import get_method
    from wdmoe_opt.stream import solve_stream

    method = get_method("sequential", "p1")

    def solve(instance):
        return method(JointProblem(instance), {"selection": "alg1", "bandwidth": "exact"})

    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="wdmoe-trace-") as out:
        report = solve_stream(source, batch_size, solve, out, label="alg1+exact",
                              on_batch=lambda row: print(row["key"], file=sys.stderr))
    return {"tokens": report.tokens, "batches": len(report.rows),
            "total_latency_s": report.total_latency_s,
            "solver_own_s": sum(r["solve_time_s"] for r in report.rows),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(sizes, json_max: int, workdir: Path) -> list[dict]:
    rows = []
    startup = _run(["solve", "--help"])
    for J in sizes:
        s, sol = workdir / f"s{J}.npz", workdir / f"sol{J}"
        _run(["generate", "wdmoe-sim", "--seed", "0", "--tokens", str(J), "-o", str(s)])
        gating_mb = 32 * J * 8 * 8 / 2**20
        row = {"tokens": J, "gating_mb": gating_mb,
               **{f"startup_{k}": v for k, v in startup.items()}}
        forms = ("npz", "json") if J <= json_max else ("npz",)
        for form in forms:
            solve = _run(["solve", str(s), "--selection", "alg1", "--bandwidth", "exact",
                          "-o", f"{sol}.{form}", "--brief"])
            check = _run(["check", str(s), f"{sol}.{form}"])
            for what, r in (("solve", solve), ("check", check)):
                for k, v in r.items():
                    row[f"cli_{what}_{form}_{k}"] = v
        row["solver_own_s"] = read_solution_dict(f"{sol}.npz")["solve_time_s"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.run([sys.executable, __file__, "--phases", str(s), str(workdir)],
                               env=env, capture_output=True, text=True, check=True)
        row.update({f"phase_{k}_s": v for k, v in json.loads(child.stdout).items()})
        rows.append(row)
        s.unlink()
        print(f"{J} tokens done", file=sys.stderr, flush=True)
    return rows


def plot(df, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    J = df["tokens"]
    ax = axes[0]
    for p in PHASES:
        col = f"phase_{p}_s"
        if col in df:
            ax.plot(J, df[col], marker="o", label=p)
    ref = df["phase_solve_s"].iloc[-1] * J / J.iloc[-1]
    ax.plot(J, ref, "k:", label="linear (through solve)")
    ax.set(xscale="log", yscale="log", xlabel="tokens J", ylabel="CPU s",
           title="phases in one process")
    ax.legend(fontsize=7, ncol=2)
    ax = axes[1]
    ax.plot(J, df["cli_solve_npz_cpu_s"], marker="o", label="CLI solve (.npz)")
    ax.plot(J, df["cli_check_npz_cpu_s"], marker="s", label="CLI check (.npz)")
    if "cli_solve_json_cpu_s" in df:
        ax.plot(J, df["cli_solve_json_cpu_s"], marker="^", ls="--", label="CLI solve (.json)")
        ax.plot(J, df["cli_check_json_cpu_s"], marker="v", ls="--", label="CLI check (.json)")
    ax.plot(J, df["phase_solve_s"], marker="x", label="the solver's own")
    ax.plot(J, 2 * df["phase_solve_s"], "k:", label="2x the solver's own")
    ax.plot(J, df["startup_cpu_s"], color="grey", ls="-.", label="CLI start-up (--help)")
    ax.set(xscale="log", yscale="log", xlabel="tokens J", ylabel="CPU s",
           title="end to end, per process")
    ax.legend(fontsize=7)
    ax = axes[2]
    for what, m in (("solve", "o"), ("check", "s")):
        ax.plot(J, df[f"cli_{what}_npz_peak_mb"], marker=m, label=f"CLI {what} (.npz)")
    ax.plot(J, 3 * df["gating_mb"], "k:", label="target: 3x the gating array")
    ax.plot(J, df["gating_mb"], color="grey", ls="--", label="the gating array")
    ax.plot(J, df["startup_peak_mb"], color="grey", ls="-.", label="CLI start-up (--help)")
    ax.set(xscale="log", yscale="log", xlabel="tokens J", ylabel="peak resident MB",
           title="peak memory")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(df) -> str:
    cols = ["tokens", "phase_read_s", "phase_hash_s", "phase_solve_s", "phase_evaluate_s",
            "phase_write_npz_s", "phase_read_npz_s", "phase_check_npz_s",
            "phase_write_json_s", "phase_check_json_s", "cli_solve_npz_cpu_s",
            "cli_check_npz_cpu_s", "cli_solve_npz_wall_s", "solver_own_s",
            "cli_check_npz_wall_s", "cli_solve_npz_peak_mb", "cli_check_npz_peak_mb",
            "gating_mb"]
    head = "| " + " | ".join(c.replace("phase_", "").replace("cli_", "CLI ") for c in cols)
    lines = [head + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{int(r[c])}" if c == "tokens" else f"{r[c]:.3g}"
                                       for c in cols) + " |")
    return "\n".join(lines)


def targets(df) -> str:
    """The issue's targets, on wall times (as stated) and on CPU times (robust to a
    loaded machine: the solver's own CPU time is the ``solve`` phase)."""
    big = df[df["tokens"] >= 32768]
    last = df.iloc[-1]
    e2e_wall = (big["cli_solve_npz_wall_s"] / big["solver_own_s"]).max()
    e2e_cpu = (big["cli_solve_npz_cpu_s"] / big["phase_solve_s"]).max()
    chk_wall = (df["cli_check_npz_wall_s"] / df["cli_solve_npz_wall_s"]).max()
    chk_cpu = (df["cli_check_npz_cpu_s"] / df["cli_solve_npz_cpu_s"]).max()
    mem = max(last["cli_solve_npz_peak_mb"], last["cli_check_npz_peak_mb"]) / last["gating_mb"]
    return "\n".join([
        f"- CLI solve / the solver's own time at >= 32768 tokens: max {e2e_wall:.2f} (wall), "
        f"{e2e_cpu:.2f} (CPU) (target <= 2)",
        f"- CLI check / CLI solve: max {chk_wall:.2f} (wall), {chk_cpu:.2f} (CPU) "
        "(target <= 1)",
        f"- peak memory / gating array at {int(last['tokens'])} tokens: {mem:.2f} "
        "(target < 3)"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="folder for scale.csv/.png")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--json-max", type=int, default=32768,
                    help="largest size also solved and checked through a .json solution")
    ap.add_argument("--from-csv", type=Path, help="re-plot and re-print a saved scale.csv")
    ap.add_argument("--trace", help="solve this file or folder as a stream instead")
    ap.add_argument("--batch-size", type=int, default=32768, help="tokens per batch (--trace)")
    ap.add_argument("--phases", nargs=2, metavar=("INSTANCE", "WORKDIR"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phases:
        print(json.dumps(_phases(*args.phases)))
        return
    if args.trace:
        print(json.dumps(_trace(args.trace, args.batch_size)))
        return
    import pandas as pd
    if args.from_csv:
        df = pd.read_csv(args.from_csv)
    else:
        with tempfile.TemporaryDirectory(prefix="wdmoe-scale-") as tmp:
            df = pd.DataFrame(measure(args.sizes, args.json_max, Path(tmp)))
    print(table(df))
    print(targets(df))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        if not args.from_csv:
            df.to_csv(args.out / "scale.csv", index=False)
        plot(df, args.out / "scale.png")


if __name__ == "__main__":
    main()
