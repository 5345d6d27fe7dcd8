"""``wdmoe-opt bench``: run solvers on a library of instances, resumably (thin over
:mod:`wdmoe_opt.harness.bench`)."""

from __future__ import annotations

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..harness.bench import plan, run_bench
from ._params import FiniteFloat


def _csv(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


@click.command("bench")
@click.option("--instances", "instances", required=True, type=click.Path(),
              help="index.json, a folder holding one, a folder of instance files, or one file")
@click.option("--solvers", required=True, help="comma-separated solver names (files of the "
              "solvers folder, e.g. topk-uniform,alg1-exact)")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="results folder (results.parquet, solutions/); re-running resumes")
@click.option("--repeat", default=1, show_default=True, type=click.IntRange(1),
              help="runs per (instance, solver)")
@click.option("--timeout", default=60.0, show_default=True, type=FiniteFloat(0, low_open=True),
              help="seconds per run; the process is killed after it (plus a 5 s grace)")
@click.option("--memory", "memory_mb", default=8192.0, show_default=True,
              type=FiniteFloat(0, low_open=True),
              help="address-space limit per run, MiB")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="run the first N instances only")
@click.option("--tiers", default=None, help="comma-separated tiers (tiny,small,paper,large,"
              "fast-fading); default all")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(1),
              help="runs at a time (local pool)")
@click.option("--scheduler", default=None, help="dask.distributed scheduler address "
              "(e.g. tcp://10.0.0.1:8786); default: local process pool")
@click.option("--solvers-dir", "solvers_dirs", multiple=True, type=click.Path(file_okay=False),
              help="folder of solver files (repeatable); default ./solvers or the "
              "repository's solvers/")
def command(instances, solvers, out, repeat, timeout, memory_mb, limit, tiers, jobs, scheduler,
            solvers_dirs):
    """Run every (instance, solver) pair in its own process with a time and memory limit,
    verify each point with the checker and record one row per run in OUT/results.parquet.

    \b
    Example:
      wdmoe-opt bench --instances instances --tiers tiny,small \\
          --solvers topk-uniform,p3-exact,p2-milp --timeout 30 --jobs 2 --out runs/
      wdmoe-opt report runs/ --out runs-report/
    """
    sweep = plan(instances, _csv(solvers), out, solver_dirs=list(solvers_dirs) or None,
                 tiers=_csv(tiers), limit=limit, repeat=repeat, timeout=timeout,
                 memory_mb=memory_mb, jobs=jobs, scheduler=scheduler)
    console = Console(stderr=True)
    counts: dict[str, int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        bar = progress.add_task("preparing instances", total=None)

        def on_event(kind, payload):
            if kind == "instance":
                progress.update(bar, description=f"instance {payload}")
            elif kind == "total":
                progress.update(bar, total=payload, description="running")
            else:
                counts[payload["status"]] = counts.get(payload["status"], 0) + 1
                progress.update(bar, advance=1, description=f"{payload['solver']} on "
                                f"{payload['instance']}: {payload['status']}")

        table = run_bench(sweep, on_event)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to run"
    click.echo(f"{summary}; {len(table.rows)} rows in {table.path}")
    return 0
