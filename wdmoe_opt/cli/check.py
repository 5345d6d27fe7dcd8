"""``wdmoe-opt check``: independent verification of a solution file."""

from __future__ import annotations

import click

from ..check import check_solution
from ..io import read_instance, read_solution_dict


@click.command("check")
@click.argument("instance_file", type=click.Path(dir_okay=False))
@click.argument("solution_file", type=click.Path(dir_okay=False))
def command(instance_file, solution_file):
    """Verify SOLUTION_FILE on INSTANCE_FILE: feasibility (eqs. 16, 20, 21, the support of
    its problem), the reported objective, layer latencies, WLR, retained weight, counts
    and gap recomputed independently, and every claim (bounds, an optimal status within
    its tolerance, P1 bilevel feasibility where tractable). Exit 0 if valid, 1 with the
    first violation named otherwise.

    \b
    Example:
      wdmoe-opt check sim.json sol.json
    """
    instance = read_instance(instance_file)
    doc = read_solution_dict(solution_file)
    notes: list[str] = []
    violations = check_solution(instance, doc, notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if violations:
        click.echo(f"INVALID: {violations[0]}", err=True)
        for v in violations[1:]:
            click.echo(f"  also: {v}", err=True)
        return 1
    objective = doc.get("objective_s")
    shown = "inf" if objective is None else f"{objective:.6g}"
    click.echo(f"OK: {solution_file} is feasible for {instance.name} ({doc['problem']}); "
               f"objective {shown} s, WLR {doc['wlr_total']:.6g}, layer latencies, bounds "
               "and status recomputed"
               + ("; bilevel feasibility not verified" if notes else ""))
    return 0
