"""``wdmoe-opt solve``: P1 as a composition of a selection (P2) and a bandwidth (P3) method."""

from __future__ import annotations

import click

from ..io import read_instance, solution_to_json, write_solution
from ..problems import LOWER_LEVELS, SUPPORTS, JointProblem
from ..registry import get_method
from ._params import parse_assignments
from ._render import print_solution


def _with_time_limit(method_key: str, problem: str, options: dict, time_limit):
    """Add ``time_limit`` to ``options`` if the method takes one."""
    names = {n for n, _, _ in get_method(method_key, problem).options_cls.describe()}
    if time_limit is not None and "time_limit" in names:
        options = {"time_limit": time_limit, **options}
    return options


@click.command("solve")
@click.argument("instance_file", type=click.Path(dir_okay=False))
@click.option("--selection", default="topk", show_default=True,
              help="P2 method: topk, alg1, alg2, milp, ... (`wdmoe-opt info --methods`).")
@click.option("--bandwidth", default="uniform", show_default=True,
              help="P3 method: uniform, slsqp, cvxpy, exact.")
@click.option("--support", type=click.Choice(SUPPORTS), default="topk", show_default=True,
              help="Experts a token may keep: a subset of its router Top-K, or any.")
@click.option("--joint", default="sequential", show_default=True,
              help="P1 method: sequential (the paper), alternating, exact.")
@click.option("--lower-level", type=click.Choice(LOWER_LEVELS), default="uniform",
              show_default=True, help="How the P2 follower sees the bandwidth (SPEC §2).")
@click.option("--time-limit", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds, passed to every method that takes a time limit.")
@click.option("--selection-option", "selection_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the P2 method; repeatable.")
@click.option("--bandwidth-option", "bandwidth_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the P3 method; repeatable.")
@click.option("--joint-option", "joint_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the P1 method; repeatable.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write the wdmoe-solution/1 document here.")
@click.option("--json", "as_json", is_flag=True, help="Print the solution document on stdout.")
@click.option("--brief", is_flag=True, help="Print the totals only, without the tables.")
def command(instance_file, selection, bandwidth, support, joint, lower_level, time_limit,
            selection_opts, bandwidth_opts, joint_opts, output, as_json, brief):
    """Solve INSTANCE_FILE and print a summary (or the solution JSON with --json).

    \b
    Example:
      wdmoe-opt solve sim.json --selection alg1 --bandwidth exact -o sol.json
    """
    instance = read_instance(instance_file)
    problem = JointProblem(instance, support=support, lower_level=lower_level)
    method = get_method(joint, "p1")
    composition = {
        "selection": selection, "bandwidth": bandwidth,
        "selection_options": _with_time_limit(selection, "p2", parse_assignments(
            selection_opts, "--selection-option"), time_limit),
        "bandwidth_options": _with_time_limit(bandwidth, "p3", parse_assignments(
            bandwidth_opts, "--bandwidth-option"), time_limit),
    }
    known = {n for n, _, _ in method.options_cls.describe()}
    options = {k: v for k, v in composition.items() if k in known}
    options.update(_with_time_limit(method.key, "p1", parse_assignments(
        joint_opts, "--joint-option"), time_limit))
    solution = method(problem, options)
    if output:
        write_solution(solution, output)
    if as_json:
        click.echo(solution_to_json(solution))
    else:
        print_solution(solution, instance, tables=not brief)
        if output:
            click.echo(f"wrote {output}")
