"""``wdmoe-opt solve --batch-size N``: a long recording as a stream of batches.

The streaming itself (lazy batches, results written as they go, resume) is
:func:`wdmoe_opt.stream.solve_stream`; this module binds the solve's flags into
the method callable and shows the progress.
"""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import InputError
from ..stream import MANIFEST, count_batches, solve_stream

#: Flags of ``solve`` that name one instance's solution (or print one solution):
#: meaningless for a stream of batches, so refused with ``--batch-size``.
_REFUSED = {"selection_from": "--selection-from", "bandwidth_from": "--bandwidth-from",
            "as_json": "--json", "brief": "--brief"}


def run(source: str, problem_key: str, output: str | None, batch_size: int, given: dict,
        build) -> int:
    """Solve every batch of ``source`` with the problem and step that ``given`` describes
    (``build(instance, problem_key, given)``, as a single solve), writing
    ``<output>/<batch>.npz`` and the manifest; resumes a run interrupted in ``output``."""
    for name, flag in _REFUSED.items():
        if given.get(name) not in (None, (), False):
            raise InputError(flag, "cannot be used with --batch-size", given[name])
    if output is None:
        raise InputError("--output", "is required with --batch-size: the folder for the "
                         "batches' solutions")
    given = {k: v for k, v in given.items() if k not in _REFUSED}
    label = json.dumps({"problem": problem_key, **{k: v for k, v in given.items()
                                                   if v not in (None, ())}},
                       sort_keys=True, default=list)

    def solve(instance):
        problem, step = build(instance, problem_key, given)
        return step.solve(problem)

    total = count_batches(source, batch_size)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"solving {source} in batches of {batch_size}", total=total)
        report = solve_stream(source, batch_size, solve, output, label=label,
                              on_batch=lambda row: bar.advance(task))
    resumed = len(report.rows) - report.solved_now
    click.echo(f"{len(report.rows)} batches, {report.tokens} tokens "
               f"({report.solved_now} solved now, {resumed} from an earlier run); total "
               f"latency {report.total_latency_s:.6g} s; solutions and {MANIFEST} in {output}")
    return 0
