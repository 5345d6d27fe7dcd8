"""Shared fixtures (small deterministic instances) and the hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE``): ``ci``, the default and what ``make test`` runs, is
derandomized (each test draws the same examples on every machine and run, so a failure
is reproducible and the suite cannot flake); ``randomized``, what ``make test-slow``
runs, draws fresh examples each run and ``RANDOMIZED_FACTOR`` times as many. A failure
found by either becomes an ``@example`` on its test.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

from wdmoe_opt.generate import generate

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("randomized", derandomize=False, deadline=None, print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)
RANDOMIZED_FACTOR = 5


def examples(n: int) -> int:
    """``max_examples`` for a test that draws ``n`` under the ``ci`` profile."""
    return n * RANDOMIZED_FACTOR if PROFILE == "randomized" else n


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
