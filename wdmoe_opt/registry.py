"""The method registry (STYLE habit 1) and composition as a value (habit 6).

Each method registers under its problem: keys read ``p3/exact``,
``p2/milp-highspy``, ``p1/alternating``. The CLI, ``info`` and the benchmark
harness list and look up methods here; an unknown name is an error listing the
known ones. A method knows its optional backends and says whether they are
importable (STYLE habit 2); a missing backend is an error with an install hint,
never a silent switch to another method.

A :class:`Step` is a method with its validated options, built once by
:func:`make_step`: the value a composed method (P1 = a P2 step then a P3 step)
holds for each of its parts, and what the harness runs.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from ._version import __version__
from .errors import BackendUnavailable, InputError
from .options import NoOptions, Options
from .solution import Solution, Status

PROBLEMS = {"p1": "joint bilevel (eqs. 13-15)", "p2": "expert selection (eqs. 15-17)",
            "p3": "bandwidth allocation (eqs. 19-21)",
            "p1-floor": "minimum latency under a retained-weight floor (selection + bandwidth)",
            "p4": "energy-minimizing similarity-aware selection (SiftMoE, SPEC §6)",
            "p5": "expert placement (SPEC §7)"}

#: Backend name -> (importable module, install hint).
_BACKENDS = {
    "scipy": ("scipy", "pip install scipy"), "cvxpy": ("cvxpy", "pip install cvxpy"),
    "clarabel": ("clarabel", "pip install clarabel"), "pyomo": ("pyomo", "pip install pyomo"),
    "highspy": ("highspy", "pip install highspy"), "torch": ("torch", "pip install torch==2.13.0"),
    "p3kernel": ("wdmoe_opt.bandwidth._p3kernel",
                 "build the compiled P3 kernel: make install (needs a C compiler)"),
}

_METHODS: dict[str, Method] = {}
_ALIASES: dict[str, str] = {}


@dataclass(frozen=True)
class Method:
    """A registered solver: ``solve(problem, options) -> Solution``."""

    problem: str
    name: str
    solve_fn: Callable[[object, Options], Solution]
    options_cls: type[Options]
    backends: tuple[str, ...]
    exact: bool
    summary: str

    @property
    def key(self) -> str:
        return f"{self.problem}/{self.name}"

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` if every backend imports, else ``(False, why + install hint)``."""
        missing = [b for b in self.backends if not _importable(_BACKENDS.get(b, (b,))[0])]
        if not missing:
            return True, ""
        hints = "; ".join(_BACKENDS.get(b, (b, f"pip install {b}"))[1] for b in missing)
        return False, f"{self.key} needs {', '.join(missing)}: {hints}"

    def make_options(self, options: Options | Mapping | None = None) -> Options:
        """Build and validate options from a mapping (unknown names are an error)."""
        if isinstance(options, self.options_cls):
            opts = options
        elif isinstance(options, Options):
            raise InputError(f"the options of {self.key}", "are options of another method",
                             type(options).__name__)
        else:
            if options is not None and not isinstance(options, Mapping):
                raise InputError(f"the options of {self.key}", "must be a mapping of names "
                                 "to values", options)
            given = dict(options or {})
            known = {n for n, _, _ in self.options_cls.describe()}
            unknown = sorted(set(given) - known)
            if unknown:
                raise InputError(f"the '{unknown[0]}' option of {self.key}",
                                 "is unknown; known options: " + (", ".join(sorted(known))
                                                                  or "none"))
            opts = self.options_cls(**given)
        opts.validate(self.key)
        return opts

    def step(self, options: Options | Mapping | None = None) -> Step:
        """This method with validated options, as a :class:`Step`."""
        return Step(self, self.make_options(options))

    def run(self, problem, options: Options) -> Solution:
        """Solve with validated ``options``; time the solve only and record the run."""
        if getattr(problem, "key", None) != self.problem:
            raise InputError("problem", f"must be a {self.problem} problem for {self.key}",
                             getattr(problem, "key", type(problem).__name__))
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        start = time.perf_counter()
        solution = self.solve_fn(problem, options)
        elapsed = time.perf_counter() - start
        context = {name: getattr(problem, name) for name in ("support", "lower_level")
                   if hasattr(problem, name)}
        return solution.with_run_info(
            solve_time_s=elapsed, method=self.key, extra={**context, **solution.extra},
            solver={"name": self.key, "version": __version__, "options": options.as_dict(),
                    "backends": backend_versions(self.backends)})

    def __call__(self, problem, options: Options | Mapping | None = None,
                 **kwargs) -> Solution:
        """Solve ``problem``; ``kwargs`` are more options."""
        if kwargs:
            base = options.as_dict() if isinstance(options, Options) else dict(options or {})
            options = {**base, **kwargs}
        return self.run(problem, self.make_options(options))


@dataclass(frozen=True)
class Step:
    """One method with its validated options: a value, built once by :func:`make_step`.

    ``solve(problem)`` runs it; :meth:`with_time_limit` gives the step (and its
    sub-steps) a time limit where the methods take one.
    """

    method: Method
    options: Options

    @property
    def key(self) -> str:
        return self.method.key

    @property
    def time_limit(self) -> float | None:
        return getattr(self.options, "time_limit", None)

    def solve(self, problem) -> Solution:
        return self.method.run(problem, self.options)

    def as_dict(self) -> dict:
        return {"method": self.key, "options": self.options.as_dict()}

    def with_time_limit(self, seconds: float) -> tuple[Step, bool]:
        """``(step, used)``: the limit set on this method and every sub-step that takes
        one; ``used`` is False when none does (the caller decides if that is an error)."""
        changes, used = {}, False
        if self.options.takes("time_limit"):
            changes["time_limit"], used = seconds, True
        for name in self.options.step_fields():
            sub, sub_used = getattr(self.options, name).with_time_limit(seconds)
            if sub_used:
                changes[name], used = sub, True
        if not used:
            return self, False
        options = replace(self.options, **changes)
        options.validate(self.key)
        return Step(self.method, options), True


def make_step(problem: str, spec, options: Mapping | None = None, *,
              field: str = "method") -> Step:
    """A :class:`Step` of ``problem`` from a method name (``"exact"``, ``"p3/exact"``)
    with ``options``, a mapping ``{"method": name, "options": {...}}``, or a step."""
    if isinstance(spec, Step):
        if options is not None:
            raise InputError(field, "is already a step with its options; pass no options",
                             spec.key)
        if spec.method.problem != problem:
            raise InputError(field, f"must be a {problem} method", spec.key)
        return spec
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - {"method", "options"})
        if unknown or "method" not in spec or options is not None:
            raise InputError(field, 'must be a method name or {"method": ..., "options": '
                             '{...}}', dict(spec))
        return make_step(problem, spec["method"], spec.get("options"), field=field)
    if not isinstance(spec, str):
        raise InputError(field, f"must name a {problem} method", spec)
    return get_method(spec, problem, field=field).step(options)


def register(problem: str, name: str, *, options: type[Options] = NoOptions,
             backends: tuple[str, ...] = (), exact: bool = False,
             aliases: tuple[str, ...] = ()):
    """Decorator registering ``fn(problem, options) -> Solution`` as ``problem/name``.

    ``exact`` marks methods that prove optimality (status ``optimal``) when they
    finish; the compliance suite holds them to the known optima. ``aliases`` are
    other names that look the same method up (``p2/milp`` for ``p2/milp-highspy``).
    """
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}")

    def wrap(fn):
        key = f"{problem}/{name}"
        if key in _METHODS or key in _ALIASES:
            raise ValueError(f"method {key} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _METHODS[key] = Method(problem, name, fn, options, tuple(backends), exact, summary)
        for alias in aliases:
            _ALIASES[f"{problem}/{alias}"] = key
        return fn

    return wrap


def _load_builtin() -> None:
    from . import builtin  # noqa: F401  (its imports register the built-in methods)


def methods(problem: str | None = None) -> list[Method]:
    """Every registered method (of one problem), sorted by key."""
    _load_builtin()
    return [m for k, m in sorted(_METHODS.items()) if problem is None or m.problem == problem]


def aliases(problem: str | None = None) -> dict[str, str]:
    """``{alias key: method key}`` (of one problem)."""
    _load_builtin()
    return {a: k for a, k in sorted(_ALIASES.items())
            if problem is None or a.startswith(problem + "/")}


def get_method(key: str, problem: str | None = None, *, field: str | None = None) -> Method:
    """Look a method up by ``p3/exact`` (or by ``exact`` with ``problem="p3"``)."""
    _load_builtin()
    if not isinstance(key, str):
        raise InputError(field or "method", "must be a method name", key)
    full = key if "/" in key or problem is None else f"{problem}/{key}"
    full = _ALIASES.get(full, full)
    if full in _METHODS and (problem is None or _METHODS[full].problem == problem):
        return _METHODS[full]
    known = [m.key if problem is None else m.name for m in methods(problem)]
    known += [a if problem is None else a.split("/", 1)[1] for a in aliases(problem)]
    if field is None:
        field, message = ("method" if problem is None else f"{problem} method"), "is unknown"
    else:
        message = f"is not a {problem} method" if problem else "is not a method"
    raise InputError(field, f"{message}; known: " + ", ".join(sorted(known)), key)


def solve(problem, method: str | Step, options: Mapping | Options | None = None,
          **kwargs) -> Solution:
    """Solve ``problem`` with a method name (``"exact"`` or ``"p3/exact"``) or a step."""
    if getattr(problem, "key", None) not in PROBLEMS:
        raise InputError("problem", "must be a problem object (BandwidthProblem, "
                         "SelectionProblem, JointProblem, ...)", problem)
    if isinstance(method, Step):
        if options is not None or kwargs:
            raise InputError("options", "go into the step, not beside it", method.key)
        return make_step(problem.key, method).solve(problem)
    return get_method(method, problem.key)(problem, options, **kwargs)


def backend_versions(backends: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of numpy, scipy and the given backends (benchopt-style metadata)."""
    return dict(_backend_versions(tuple(backends)))


@functools.cache
def _backend_versions(backends: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = {}
    for name in ("numpy", "scipy", *backends):
        if name == "p3kernel":
            out[name] = __version__ if _importable(_BACKENDS[name][0]) else "missing"
            continue
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return tuple(out.items())


@functools.cache
def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


__all__ = ["Method", "Step", "register", "methods", "aliases", "get_method", "make_step",
           "solve", "Status", "backend_versions", "PROBLEMS"]
