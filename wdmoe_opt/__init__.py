"""wdmoe-opt: optimization toolkit for wireless distributed mixture-of-experts inference.

The model (:mod:`wdmoe_opt.model`), the three problems (:mod:`wdmoe_opt.problems`),
the method registry (:mod:`wdmoe_opt.registry`) and the one result type
(:mod:`wdmoe_opt.solution`). Heavy backends load only when a method needs them.
"""

from ._version import __version__
from .errors import BackendUnavailable, InputError
from .model import Instance, ModelSizes, Selection, System
from .problems import BandwidthProblem, JointProblem, SelectionProblem
from .registry import get_method, methods, register, solve
from .solution import Solution, Status

__all__ = [
    "__version__", "InputError", "BackendUnavailable", "Instance", "ModelSizes", "Selection",
    "System", "BandwidthProblem", "SelectionProblem", "JointProblem", "Solution", "Status",
    "get_method", "methods", "register", "solve", "batch",
]


def __getattr__(name: str):
    """``wdmoe_opt.batch`` (the simulator's entry point) is imported on first use."""
    if name == "batch":
        import importlib
        return importlib.import_module(".batch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
