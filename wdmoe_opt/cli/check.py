"""``wdmoe-opt check``: independent verification of a solution file."""

from __future__ import annotations

import click

from ..check import check_solution
from ..io import read_instance, read_solution_dict


@click.command("check")
@click.argument("instance_file", type=click.Path(dir_okay=False))
@click.argument("solution_file", type=click.Path(dir_okay=False))
def command(instance_file, solution_file):
    """Verify SOLUTION_FILE on INSTANCE_FILE: feasibility (eqs. 16, 20, 21, support) and the
    reported objective, layer latencies, WLR and retained weight, recomputed independently.
    Exit 0 if valid, 1 with the first violation named otherwise.

    \b
    Example:
      wdmoe-opt check sim.json sol.json
    """
    instance = read_instance(instance_file)
    doc = read_solution_dict(solution_file)
    violations = check_solution(instance, doc)
    if violations:
        click.echo(f"INVALID: {violations[0]}", err=True)
        for v in violations[1:]:
            click.echo(f"  also: {v}", err=True)
        return 1
    click.echo(f"OK: {solution_file} is feasible for {instance.name}; objective "
               f"{doc['objective_s']:.6g} s, WLR {doc['wlr_total']:.6g} and layer latencies "
               "recomputed")
    return 0
