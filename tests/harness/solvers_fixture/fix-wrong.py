"""Test fixture: a solver returning a point the checker rejects (tampered objective)."""

from wdmoe_opt import Selection, Solution
from wdmoe_opt.harness import Custom
from wdmoe_opt.model import uniform_bandwidth_hz


def solve(instance):
    good = Solution.evaluate(instance, Selection.topk(instance), uniform_bandwidth_hz(instance),
                             problem="p3", method="fix-wrong")
    return good.with_run_info(objective_s=good.objective_s / 2)


SOLVER = Custom(name="fix-wrong", problem="p3", function=solve)
