"""The built-in methods, declared explicitly: importing this module registers them.

The registry imports it on the first lookup, so ``import wdmoe_opt`` stays fast;
a heavy backend (cvxpy, pyomo, highspy) loads only when its method runs.
"""

from .bandwidth import conic, exact, robust, slsqp, uniform  # noqa: F401
from .energy import bandwidth as energy_bandwidth  # noqa: F401
from .energy import baselines, fading, relax  # noqa: F401
from .energy import compact as energy_compact  # noqa: F401
from .energy import exact as energy_exact  # noqa: F401
from .joint import alternating, sequential, weight_floor  # noqa: F401
from .joint import exact as joint_exact  # noqa: F401
from .placement import heuristics, local_search  # noqa: F401
from .placement import milp as placement_milp  # noqa: F401
from .selection import alg1, alg2, brute_force, milp, milp_pyomo, topk  # noqa: F401
from .selection import exact as selection_exact  # noqa: F401
