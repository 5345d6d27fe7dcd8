"""Solver configurations of the benchmark and their discovery (benchopt-style plug-ins).

A solver file ``solvers/<name>.py`` defines one module-level object ``SOLVER``:

* a :class:`Config`, naming a registered method and its options (most files), or
* a :class:`Custom`, wrapping any ``solve(instance) -> Solution`` function (a competitor
  that is not a registered method).

Both share one interface: ``SOLVER.problem_key`` (which benchmark problem the runs are
compared on), ``SOLVER.available()`` (``(ok, why)``) and ``SOLVER.solve(instance,
time_limit)``. The harness discovers every ``*.py`` file of the solver folders (names
starting with ``_`` are skipped); a file that fails to import is reported, never fatal.
See ``solvers/README.md`` for an example.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..model import Instance, Selection
from ..problems import LOWER_LEVELS, SUPPORTS, BandwidthProblem, JointProblem, SelectionProblem
from ..solution import Solution

#: Benchmark problems: P1 (latency, bilevel), P2 (WLR at the uniform split) and P3
#: (latency of the router's Top-K selection, i.e. bandwidth allocation alone).
BENCH_PROBLEMS = ("p1", "p2", "p3")

#: Objective sense of each benchmark problem: P2 maximizes the total WLR (eq. 15),
#: P1 and P3 minimize the batch latency (eqs. 13, 19).
SENSE = {"p1": "min", "p2": "max", "p3": "min"}


def problem_key(problem: str, support: str = "topk", lower_level: str = "uniform") -> str:
    """The name runs are compared under: ``p1/topk/uniform``, ``p2/all``, ``p3``."""
    if problem == "p1":
        return f"p1/{support}/{lower_level}"
    if problem == "p2":
        return f"p2/{support}"
    return "p3"


def build_problem(problem: str, instance: Instance, support: str, lower_level: str):
    """The problem object of ``wdmoe_opt.problems`` for one benchmark problem."""
    if problem == "p1":
        return JointProblem(instance, support=support, lower_level=lower_level)
    if problem == "p2":
        return SelectionProblem(instance, support=support)
    return BandwidthProblem(instance, Selection.topk(instance))


@dataclass(frozen=True)
class _Spec:
    """What every solver configuration has: a name and the problem it solves."""

    name: str
    problem: str
    support: str = "topk"
    lower_level: str = "uniform"
    description: str = ""

    def __post_init__(self):
        if self.problem not in BENCH_PROBLEMS:
            raise InputError(f"solver {self.name!r}: problem",
                             "must be one of " + ", ".join(BENCH_PROBLEMS), self.problem)
        if self.support not in SUPPORTS:
            raise InputError(f"solver {self.name!r}: support",
                             "must be one of " + ", ".join(SUPPORTS), self.support)
        if self.lower_level not in LOWER_LEVELS:
            raise InputError(f"solver {self.name!r}: lower_level",
                             "must be one of " + ", ".join(LOWER_LEVELS), self.lower_level)

    @property
    def problem_key(self) -> str:
        return problem_key(self.problem, self.support, self.lower_level)

    def build_problem(self, instance: Instance):
        return build_problem(self.problem, instance, self.support, self.lower_level)


@dataclass(frozen=True)
class Config(_Spec):
    """A registered method with fixed options, e.g. ``p1/sequential`` with
    ``{"selection": "topk", "bandwidth": "exact"}``: run as one
    :class:`~wdmoe_opt.registry.Step`, built and validated once.

    Every method of the step that takes a time limit and is not given one in
    ``options`` gets the harness's ``--timeout`` (minus a margin), so it can stop
    and return its incumbent before it is killed.
    """

    method: str = ""
    options: Mapping = field(default_factory=dict)

    def step(self):
        """The validated step (raises :class:`InputError` on a bad method or option)."""
        from ..registry import get_method
        return get_method(self.method).step(dict(self.options))

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` if the method (and its sub-methods) is registered and its
        backends import; otherwise ``(False, why)``."""
        try:
            step = self.step()
        except (InputError, ValueError) as exc:
            return False, f"{self.name}: {exc}"
        return step.method.available()

    def solve(self, instance: Instance, time_limit: float | None = None) -> Solution:
        step = self.step()
        if time_limit is not None and "time_limit" not in self.options:
            step, _ = step.with_time_limit(time_limit)
        return step.solve(self.build_problem(instance))


@dataclass(frozen=True)
class Custom(_Spec):
    """Any function ``solve(instance) -> Solution`` (a competitor outside the registry).

    The function must return a :class:`~wdmoe_opt.solution.Solution` built with
    ``Solution.evaluate`` for the benchmark problem it declares; the harness checks
    it with the independent checker like any other.
    """

    function: Callable[[Instance], Solution] | None = None

    def available(self) -> tuple[bool, str]:
        return (True, "") if callable(self.function) else (False, f"{self.name}: no function")

    def solve(self, instance: Instance, time_limit: float | None = None) -> Solution:
        return self.function(instance)


SolverSpec = Config | Custom


@dataclass(frozen=True)
class SolverFile:
    """A discovered solver file: its spec, or why it could not be loaded."""

    name: str
    path: Path
    spec: SolverSpec | None = None
    error: str = ""


def load_solver_file(path: str | Path) -> SolverSpec:
    """Import ``path`` and return its ``SOLVER``; raise :class:`InputError` if it has none."""
    path = Path(path).resolve()
    module_name = f"wdmoe_bench_solver_{path.stem.replace('-', '_')}_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError("solver file", "cannot be imported", str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(module_name, None)
    solver = getattr(module, "SOLVER", None)
    if not isinstance(solver, (Config, Custom)):
        raise InputError(f"solver file {path.name}", "must define SOLVER = Config(...) or "
                         "Custom(...) (see solvers/README.md)")
    if solver.name != path.stem:
        raise InputError(f"solver file {path.name}", "must name its SOLVER after the file",
                         solver.name)
    return solver


def discover(folders: Iterable[str | Path]) -> dict[str, SolverFile]:
    """Every solver file of ``folders`` by name; a broken file carries its error."""
    found: dict[str, SolverFile] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError("solvers folder", "does not exist", str(folder))
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_") or path.stem in found:
                continue
            try:
                found[path.stem] = SolverFile(path.stem, path.resolve(), load_solver_file(path))
            except Exception as exc:  # a broken plug-in is reported, never fatal
                found[path.stem] = SolverFile(path.stem, path.resolve(),
                                              error=f"{type(exc).__name__}: {exc}")
    return found


def select(found: Mapping[str, SolverFile], names: Iterable[str]) -> list[SolverFile]:
    """The solver files named in ``names`` (in order); an unknown name is an error."""
    chosen = []
    for name in names:
        if name not in found:
            raise InputError("--solvers", "names an unknown solver; known: "
                             + ", ".join(sorted(found)), name)
        chosen.append(found[name])
    return chosen
