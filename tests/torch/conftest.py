"""Fixtures for the torch bridge: tiny random MoE models (skipped without the extra)."""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("torch") is not None:
    import torch

    # tiny models gain nothing from intra-op threads, which only contend with the
    # other pytest-xdist worker on a 2-core machine
    torch.set_num_threads(1)

FAMILIES = ("tiny-mixtral", "tiny-qwen2-moe", "tiny-olmoe")


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    """A tiny random model of each family (2 layers, hidden 32, 8 experts, Top-2)."""
    pytest.importorskip("transformers")
    from wdmoe_opt.torch import tiny_model

    return tiny_model(request.param, seed=0)


@pytest.fixture(scope="module")
def mixtral():
    pytest.importorskip("transformers")
    from wdmoe_opt.torch import tiny_model

    return tiny_model("tiny-mixtral", seed=0)
