"""The method registry (STYLE habit 1): each method registers under its problem.

Keys read ``p3/exact``, ``p2/milp-highspy``, ``p1/alternating``. The CLI, ``info``
and the benchmark harness list and look up methods here; an unknown name is an
error listing the known ones. A method knows its optional backends and says
whether they are importable (STYLE habit 2); a missing backend is an error with
an install hint, never a silent switch to another method.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import BackendUnavailable, InputError
from .options import NoOptions, Options
from .problems import Problem
from .solution import Solution, Status

PROBLEMS = {"p1": "joint bilevel (eqs. 13-15)", "p2": "expert selection (eqs. 15-17)",
            "p3": "bandwidth allocation (eqs. 19-21)",
            "p5": "expert placement (SPEC §7)"}

#: Packages whose import registers the built-in methods.
_BUILTIN_PACKAGES = ("wdmoe_opt.bandwidth", "wdmoe_opt.selection", "wdmoe_opt.joint",
                     "wdmoe_opt.placement")

#: Python distribution names of the backends, for version records and install hints.
_BACKEND_DISTRIBUTIONS = {"cvxpy": "cvxpy", "clarabel": "clarabel", "pyomo": "pyomo",
                          "highspy": "highspy", "scipy": "scipy", "torch": "torch"}

_METHODS: dict[str, Method] = {}


@dataclass(frozen=True)
class Method:
    """A registered solver: ``solve(problem, options) -> Solution``."""

    problem: str
    name: str
    solve_fn: Callable[[Problem, Options], Solution]
    options_cls: type[Options]
    backends: tuple[str, ...]
    exact: bool
    summary: str

    @property
    def key(self) -> str:
        return f"{self.problem}/{self.name}"

    def available(self) -> tuple[bool, str]:
        """``(True, "")`` if every backend imports, else ``(False, why + install hint)``."""
        missing = [b for b in self.backends if importlib.util.find_spec(b) is None]
        if not missing:
            return True, ""
        hint = " ".join(_BACKEND_DISTRIBUTIONS.get(b, b) for b in missing)
        return False, f"{self.key} needs {', '.join(missing)}: pip install {hint}"

    def make_options(self, options: Options | dict | None = None) -> Options:
        """Build and validate options from a dict (unknown names are an error)."""
        if isinstance(options, self.options_cls):
            opts = options
        else:
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

    def __call__(self, problem: Problem, options: Options | dict | None = None,
                 **kwargs) -> Solution:
        """Solve ``problem``; time the solve only and record the run's metadata."""
        if problem.key != self.problem:
            raise InputError("problem", f"{self.key} solves {self.problem}, not", problem.key)
        if kwargs:
            options = {**(options.as_dict() if isinstance(options, Options) else options or {}),
                       **kwargs}
        opts = self.make_options(options)
        ok, why = self.available()
        if not ok:
            raise BackendUnavailable(why)
        start = time.perf_counter()
        solution = self.solve_fn(problem, opts)
        elapsed = time.perf_counter() - start
        context = {name: getattr(problem, name) for name in ("support", "lower_level")
                   if hasattr(problem, name)}
        return solution.with_run_info(
            solve_time_s=elapsed, method=self.key, extra={**context, **solution.extra},
            solver={"name": self.key, "version": package_version(),
                    "options": opts.as_dict(), "backends": backend_versions(self.backends)})


def register(problem: str, name: str, *, options: type[Options] = NoOptions,
             backends: tuple[str, ...] = (), exact: bool = False):
    """Decorator registering ``fn(problem, options) -> Solution`` as ``problem/name``.

    ``exact`` marks methods that prove optimality (status ``optimal``) when they
    finish; the compliance suite holds them to the known optima.
    """
    if problem not in PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}")

    def wrap(fn):
        key = f"{problem}/{name}"
        if key in _METHODS:
            raise ValueError(f"method {key} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        _METHODS[key] = Method(problem, name, fn, options, tuple(backends), exact, summary)
        return fn

    return wrap


def _load_builtin() -> None:
    for pkg in _BUILTIN_PACKAGES:
        importlib.import_module(pkg)


def methods(problem: str | None = None) -> list[Method]:
    """Every registered method (of one problem), sorted by key."""
    _load_builtin()
    return [m for k, m in sorted(_METHODS.items()) if problem is None or m.problem == problem]


def get_method(key: str, problem: str | None = None) -> Method:
    """Look a method up by ``p3/exact`` (or by ``exact`` with ``problem="p3"``)."""
    _load_builtin()
    full = key if "/" in key or problem is None else f"{problem}/{key}"
    if full not in _METHODS:
        known = [m.key if problem is None else m.name for m in methods(problem)]
        field = "method" if problem is None else f"{problem} method"
        raise InputError(field, "is unknown; known: " + ", ".join(known), key)
    return _METHODS[full]


def solve(problem: Problem, method: str, options: Options | dict | None = None,
          **kwargs) -> Solution:
    """Solve ``problem`` with the method named ``method`` (``"exact"`` or ``"p3/exact"``)."""
    return get_method(method, problem.key)(problem, options, **kwargs)


def package_version() -> str:
    from . import __version__
    return __version__


def backend_versions(backends: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of numpy, scipy and the given backends (benchopt-style metadata)."""
    return dict(_backend_versions(tuple(backends)))


@functools.cache
def _backend_versions(backends: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = {}
    for name in ("numpy", "scipy", *backends):
        dist = _BACKEND_DISTRIBUTIONS.get(name, name)
        try:
            out[name] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "missing"
    return tuple(out.items())


__all__ = ["Method", "register", "methods", "get_method", "solve", "Status",
           "backend_versions", "PROBLEMS"]
