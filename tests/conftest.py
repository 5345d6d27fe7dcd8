"""Shared fixtures: small deterministic instances."""

from __future__ import annotations

import numpy as np
import pytest

from wdmoe_opt.generate import generate


def small_instance(seed: int = 0, **params):
    """A small wdmoe-sim instance (4 layers x 16 tokens x 4 experts on 4 devices by default)."""
    base = dict(layers=4, tokens=16, experts=4, devices=4)
    base.update(params)
    return generate("wdmoe-sim", seed=seed, **base)


@pytest.fixture
def instance():
    return small_instance()


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
