"""``wdmoe-opt report``: figures, tables and an HTML page from a bench folder (thin over
:mod:`wdmoe_opt.harness.report`)."""

from __future__ import annotations

import click

from ..harness.analysis import BEST_HEURISTIC, SGM_SHIFT_S, SOLVED_TOL, parse_target
from ..harness.bench import read_meta
from ..harness.library import read_library
from ..harness.report import update_index, write_report


@click.command("report")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="folder for index.html, the PNG figures and CSV tables")
@click.option("--index", "index_path", default=None, type=click.Path(),
              help="instance index to update; default: the one the sweep ran on")
@click.option("--update-index/--no-update-index", "do_update", default=True, show_default=True,
              help="write best known values the runs improve (verified points only)")
@click.option("--tol", default=SOLVED_TOL, show_default=True,
              help="relative gap to the reference under which a run counts as solved")
@click.option("--shift", default=SGM_SHIFT_S, show_default=True,
              help="shift (s) of the shifted geometric mean of times")
@click.option("--target", default=BEST_HEURISTIC, show_default=True,
              help="what a run must reach to count in the time profile and the shifted "
              f"geometric mean: a relative gap to the reference (1%, 0.01) or {BEST_HEURISTIC} "
              "(the best value a heuristic reached on the instance)")
def command(results_dir, out, index_path, do_update, tol, shift, target):
    """Per benchmark problem: time and quality profiles, time against gap, the methods
    best first, per-tier tables (target reached, mean gap with its confidence interval,
    solve time) and per-instance figures of RESULTS_DIR, as PNG and CSV files and
    OUT/index.html.

    \b
    Example:
      wdmoe-opt report runs/ --out runs-report/ --target 1%
    """
    goal = parse_target(target)
    index_path = index_path or read_meta(results_dir).get("index")
    library = read_library(index_path) if index_path else None
    report = write_report(results_dir, out, library=library, tol=tol, shift=shift,
                          target=goal)
    click.echo(f"{report.page} ({len(report.figures)} figures)")
    if library is not None and do_update:
        update_index(library, report.updates)
        for (name, problem), v in sorted(report.updates.items()):
            click.echo(f"best known {name} {problem}: {v['objective']:.9g} ({v['status']}, "
                       f"{v['solver']})")
    return 0
