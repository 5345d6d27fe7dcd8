"""The shared P2 core: batched WLR and incremental loads agree with the model layer."""

from __future__ import annotations

import numpy as np
import pytest

from wdmoe_opt import Selection, SelectionProblem
from wdmoe_opt.generate import generate
from wdmoe_opt.model import latency as lat
from wdmoe_opt.selection.common import LayerTimes, RankedSelection


@pytest.mark.parametrize("layout", [dict(experts=8, devices=8),
                                    dict(experts=8, devices=3, placement="round-robin")])
def test_incremental_loads_match_the_evaluator(layout, rng):
    inst = generate("wdmoe-sim", seed=1, layers=3, tokens=50, **layout)
    times = LayerTimes(SelectionProblem(inst))
    sel = RankedSelection(times, 3)
    for _ in range(3):
        sel.drop(rng.random(sel.n_kept.shape) < 0.4)
        mask = Selection(sel.mask())
        u, p = lat.device_loads(inst, mask)
        np.testing.assert_array_equal(sel.u, u)
        np.testing.assert_array_equal(sel.p, p)
        np.testing.assert_allclose(sel.wlr(), lat.wlr(inst, mask, times.problem.bandwidth_hz))
        np.testing.assert_allclose(times.wlr(mask.mask), sel.wlr())
    assert (sel.n_kept >= 1).all()
