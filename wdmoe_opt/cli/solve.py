"""``wdmoe-opt solve``: each problem on its own (SPEC §5), as one step of the registry.

Every flag defaults to "not given"; the chosen problem (and method) takes the
flags it uses, with its own defaults, and any flag left over is an error naming
it (exit 2): nothing is silently ignored or overridden.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from ..errors import InputError
from ..io import read_instance, read_solution_dict, solution_to_json, write_solution
from ..io.solution_io import bandwidth_from_document, selection_from_document
from ..model import Instance, Selection
from ..placement import REPLICATING, PlacementProblem
from ..problems import (
    LOWER_LEVELS,
    SUPPORTS,
    BandwidthProblem,
    JointProblem,
    SelectionProblem,
    WeightFloorProblem,
)
from ..registry import Step, get_method, make_step
from ._params import FiniteFloat, parse_assignments
from ._render import print_solution

#: Flag spelling of each keyword of :func:`command`, for messages.
_FLAGS = {"joint": "--joint", "selection": "--selection", "bandwidth": "--bandwidth",
          "support": "--support", "lower_level": "--lower-level",
          "selection_from": "--selection-from", "bandwidth_from": "--bandwidth-from",
          "min_retained_weight": "--min-retained-weight", "time_limit": "--time-limit",
          "selection_opts": "--selection-option", "bandwidth_opts": "--bandwidth-option",
          "joint_opts": "--joint-option", "placement_method": "--placement-method",
          "placement_method_opts": "--placement-option",
          "capacity_experts": "--capacity-experts", "batch_tokens": "--batch-tokens",
          "placement_from": "--placement-from", "deviation_budget": "--deviation-budget",
          "deadline_s": "--deadline-s", "max_replicas": "--max-replicas"}


class Flags:
    """The flags the user gave; a builder ``take``s those it uses."""

    def __init__(self, given: dict):
        self._given = {k: v for k, v in given.items() if v not in (None, ())}
        self._used: set[str] = set()
        self.time_limit_used = False

    def with_time_limit(self, step: Step) -> Step:
        """``step`` with ``--time-limit`` set where its methods take one (if given)."""
        if not self.given("time_limit"):
            return step
        step, used = step.with_time_limit(self.take("time_limit"))
        self.time_limit_used |= used
        return step

    def take(self, name: str, default=None):
        self._used.add(name)
        return self._given.get(name, default)

    def given(self, name: str) -> bool:
        return name in self._given

    def options(self, name: str) -> dict:
        """The ``NAME=VALUE`` pairs of ``--<name>-option`` as a dict."""
        return parse_assignments(self.take(f"{name}_opts", ()), _FLAGS[f"{name}_opts"])

    def refuse_unused(self, what: str) -> None:
        unused = [n for n in self._given if n not in self._used]
        if unused:
            raise InputError(_FLAGS[unused[0]], f"is not used by {what}", self._given[unused[0]])


def _solution_doc(instance: Instance, path: str, flag: str) -> dict:
    doc = read_solution_dict(path)
    ref = doc.get("instance")
    found = ref.get("hash") if isinstance(ref, dict) else None
    if found != instance.content_hash:
        raise InputError(flag, f"is a solution of another instance (hash {found}, this "
                         f"instance {instance.content_hash})", path)
    return doc


def _saved_bandwidth(instance: Instance, flags: Flags):
    """The allocation of ``--bandwidth-from SOL`` (validated), or None: the uniform split."""
    if not flags.given("bandwidth_from"):
        return None
    doc = _solution_doc(instance, flags.take("bandwidth_from"), "--bandwidth-from")
    return bandwidth_from_document(doc, instance, "--bandwidth-from")


def _step(flags: Flags, name: str, problem: str, default: str) -> Step:
    """The ``--<name>`` method with its ``--<name>-option`` pairs (and ``--time-limit``
    where it takes one), as a step."""
    return flags.with_time_limit(make_step(problem, flags.take(name, default),
                                           flags.options(name), field=_FLAGS[name]))


def _p3(instance: Instance, flags: Flags):
    """P3 of a saved selection (``--selection-from``) or of a P2 method's selection at
    the uniform split (``--selection``, default the router's Top-K)."""
    if flags.given("selection_from"):
        doc = _solution_doc(instance, flags.take("selection_from"), "--selection-from")
        selection = selection_from_document(doc, instance, "--selection-from")
    elif instance.replicas is not None and not flags.given("selection"):
        selection = Selection.topk(instance)   # the router's Top-K: no placement read
    else:
        p2 = SelectionProblem(instance, support=flags.take("support", "topk"))
        selection = _step(flags, "selection", "p2", "topk").solve(p2).selection
    return BandwidthProblem(instance, selection), _step(flags, "bandwidth", "p3", "exact")


def _p2(instance: Instance, flags: Flags):
    """P2 at a saved allocation (``--bandwidth-from``) or at the uniform split."""
    problem = SelectionProblem(instance, _saved_bandwidth(instance, flags),
                               support=flags.take("support", "topk"))
    return problem, _step(flags, "selection", "p2", "topk")


def _composed(flags: Flags, problem_key: str, default: str) -> Step:
    """A P1-style method (``--joint``) with its sub-steps from ``--selection`` and
    ``--bandwidth`` (only those the method composes)."""
    method = get_method(flags.take("joint", default), problem_key, field="--joint")
    options = flags.options("joint")
    steps = method.options_cls.step_fields()
    for name in steps:
        if name in options:
            raise InputError(f"the '{name}' option of {method.key}",
                             f"is set with {_FLAGS[name]}, not --joint-option", options[name])
        if flags.given(name) or flags.given(f"{name}_opts"):
            options[name] = _step(flags, name, steps[name], _default_step(method, name))
    return method.step(options)


def _default_step(method, name: str) -> str:
    return dict((n, d) for n, d, _ in method.options_cls.describe())[name]


def _p1(instance: Instance, flags: Flags):
    problem = JointProblem(instance, support=flags.take("support", "topk"),
                           lower_level=flags.take("lower_level", "uniform"))
    return problem, _composed(flags, "p1", "sequential")


def _p1_floor(instance: Instance, flags: Flags):
    problem = WeightFloorProblem(instance, flags.take("min_retained_weight", 0.9),
                                 support=flags.take("support", "topk"))
    return problem, _composed(flags, "p1-floor", "greedy")


def _p4(instance: Instance, flags: Flags):
    """P4 (SiftMoE): the global deviation budget (required), the deadline (else the
    instance's), at a saved allocation (``--bandwidth-from``) or the uniform split."""
    from ..energy import EnergyProblem

    if not flags.given("deviation_budget"):
        raise InputError("--deviation-budget", "is required by --problem p4")
    problem = EnergyProblem(instance, flags.take("deviation_budget"),
                            _saved_bandwidth(instance, flags),
                            deadlines_s=flags.take("deadline_s"))
    return problem, _step(flags, "selection", "p4", "relax")


def _p5(instance: Instance, flags: Flags):
    """P5 (SPEC §7): a placement for the trace in the file, cut into batches of
    ``--batch-tokens`` tokens [all: one batch], within ``--capacity-experts``."""
    problem = PlacementProblem(instance, flags.take("batch_tokens"),
                               capacity_experts=flags.take("capacity_experts"),
                               max_replicas=flags.take("max_replicas", 1))
    step = _step(flags, "placement_method", "p5", "greedy")
    if problem.max_replicas > 1 and step.key not in REPLICATING:
        raise InputError("--max-replicas", f"is searched by {' and '.join(REPLICATING)} "
                         f"only, not {step.key}", problem.max_replicas)
    return problem, step


#: ``--problem`` -> builder of (problem object, step) from the flags.
BUILDERS: dict[str, Callable] = {"p1": _p1, "p2": _p2, "p3": _p3, "p1-floor": _p1_floor,
                                 "p4": _p4, "p5": _p5}


def placed(instance: Instance, path: str) -> Instance:
    """``instance`` under the placement of P5 solution ``path`` (``--placement-from``:
    decided on another trace of the same system, so the hashes differ by design)."""
    doc = read_solution_dict(path)
    if doc.get("problem") != "p5" or doc.get("placement") is None:
        raise InputError("--placement-from", "must be a p5 solution with a placement", path)
    return instance.replace(placement=doc["placement"], replicas=doc.get("replicas"))


def build(instance: Instance, problem_key: str, given: dict):
    """The problem object and the step that the flags in ``given`` describe; a flag the
    problem or its method does not use is an :class:`InputError`."""
    flags = Flags(given)
    if problem_key != "p5" and flags.given("placement_from"):
        instance = placed(instance, flags.take("placement_from"))
    problem, step = BUILDERS[problem_key](instance, flags)
    step = flags.with_time_limit(step)
    if flags.given("time_limit") and not flags.time_limit_used:
        raise InputError("--time-limit", f"is not used: no method of this solve ({step.key}) "
                         "takes a time limit", flags.take("time_limit"))
    flags.refuse_unused(f"--problem {problem_key} solved by {step.key}")
    return problem, step


@click.command("solve")
@click.argument("instance_file", type=click.Path())
@click.option("--problem", "problem_key", type=click.Choice(sorted(BUILDERS)), default="p1",
              show_default=True, help="p1 bilevel (eqs. 13-15), p2 selection (eqs. 15-17), "
              "p3 bandwidth (eqs. 19-21), p1-floor min latency under a retained-weight floor, "
              "p4 energy under deviation budgets and deadlines (SiftMoE), "
              "p5 expert placement (SPEC §7).")
@click.option("--joint", help="p1 method [sequential]: sequential (the paper), alternating, "
              "exact; p1-floor method [greedy]: greedy, exact.")
@click.option("--selection", help="P2 method [topk]: topk, alg1, alg2, milp, ... "
              "(`wdmoe-opt info --methods`); with p1, the P2 step of the p1 method; with "
              "p4, the P4 method [relax]: exact, relax, topk, wdmoe, skip-threshold, ...")
@click.option("--bandwidth", help="P3 method [exact; p1: the method's own]: uniform, slsqp, "
              "cvxpy, exact.")
@click.option("--support", type=click.Choice(SUPPORTS),
              help="Experts a token may keep [topk]: a subset of its router Top-K, or any.")
@click.option("--lower-level", type=click.Choice(LOWER_LEVELS),
              help="p1: how the P2 follower sees the bandwidth [uniform] (SPEC §2).")
@click.option("--selection-from", type=click.Path(dir_okay=False),
              help="p3: allocate for the selection of this solution file.")
@click.option("--bandwidth-from", type=click.Path(dir_okay=False),
              help="p2, p4: select at the bandwidth of this solution file [uniform split].")
@click.option("--min-retained-weight", type=FiniteFloat(0, 1),
              help="p1-floor: the floor on the retained weight [0.9].")
@click.option("--deviation-budget", type=FiniteFloat(0),
              help="p4: the global deviation budget ε (split over layers by the "
              "sensitivities).")
@click.option("--deadline-s", type=FiniteFloat(0, low_open=True),
              help="p4: the deadline of every layer in s [the instance's deadlines_s].")
@click.option("--time-limit", type=FiniteFloat(0, low_open=True),
              help="Seconds, given to every method of the solve that takes a time limit.")
@click.option("--selection-option", "selection_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the P2 method; repeatable.")
@click.option("--bandwidth-option", "bandwidth_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the P3 method; repeatable.")
@click.option("--joint-option", "joint_opts", multiple=True, metavar="NAME=VALUE",
              help="Option of the p1 / p1-floor method; repeatable.")
@click.option("--placement-method", help="p5 method [greedy]: round-robin, staggered, "
              "greedy, local-search, milp.")
@click.option("--placement-option", "placement_method_opts", multiple=True,
              metavar="NAME=VALUE", help="Option of the p5 method; repeatable.")
@click.option("--capacity-experts", type=click.IntRange(1),
              help="p5: experts of one layer a device may host [the instance's, else all].")
@click.option("--batch-tokens", type=click.IntRange(1),
              help="p5: tokens per batch of the trace [all: one batch].")
@click.option("--max-replicas", type=click.IntRange(1),
              help="p5: most copies of one expert [1]; more than 1 needs local-search (adds "
              "and drops copies; tokens go to the copies by the split rule) or milp.")
@click.option("--placement-from", type=click.Path(dir_okay=False),
              help="Solve under the placement of this p5 solution (another trace of the "
              "same system).")
@click.option("-o", "--output", type=click.Path(),
              help="Write the wdmoe-solution/1 document here (.npz: compact binary form); "
              "with --batch-size, the folder for the batches' solutions.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Solve INSTANCE_FILE (a file or a folder of them) as a stream of batches "
              "of this many tokens, writing each batch's solution to the -o folder as it "
              "goes; rerun the same command to resume after an interruption.")
@click.option("--json", "as_json", is_flag=True, help="Print the solution document on stdout.")
@click.option("--brief", is_flag=True, help="Print the totals only, without the tables.")
def command(instance_file, problem_key, output, as_json, brief, batch_size, **given):
    """Solve one problem on INSTANCE_FILE and print a summary (or the solution JSON with
    --json). Defaults in [brackets] apply when a flag is not given; a flag that the
    problem or its method does not use is an error.

    \b
    Examples:
      wdmoe-opt solve sim.json --selection alg1 --bandwidth exact -o wdmoe.json
      wdmoe-opt solve sim.json --problem p3 --bandwidth slsqp --selection-from wdmoe.json
      wdmoe-opt solve sim.json --problem p2 --selection milp --bandwidth-from wdmoe.json
      wdmoe-opt solve trace.npz --selection alg1 --batch-size 32768 -o trace-solutions/
      wdmoe-opt solve sift.json --problem p4 --selection exact --deviation-budget 1.5
      wdmoe-opt solve train.json --problem p5 --placement-method local-search \\
          --capacity-experts 2 --batch-tokens 64 -o placed.json
      wdmoe-opt solve test.json --placement-from placed.json --selection alg1
    """
    if output and os.path.exists(output) and os.path.samefile(output, instance_file):
        raise InputError("-o", "would overwrite the instance file", output)
    if batch_size is not None:
        from ._stream import run
        return run(instance_file, problem_key, output, batch_size,
                   {**given, "as_json": as_json, "brief": brief}, build)
    instance = read_instance(instance_file)
    problem, step = build(instance, problem_key, given)
    solution = step.solve(problem)
    if given.get("placement_from") and problem_key != "p5":   # the document says under which
        solution = solution.with_run_info(placement=problem.instance.placement,
                                          replicas=problem.instance.replicas)
    if output:
        write_solution(solution, output)
    if as_json:
        click.echo(solution_to_json(solution))
    else:
        print_solution(solution, instance, tables=not brief)
        if output:
            click.echo(f"wrote {output}")
