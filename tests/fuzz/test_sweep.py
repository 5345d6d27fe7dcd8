"""The exhaustive sweep of every field x every hostile value (slow tier)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_every_hostile_value_in_every_field_holds(capsys):
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "reliability_sweep.py"
    spec = importlib.util.spec_from_file_location("reliability_sweep", path)
    sweep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sweep)
    assert sweep.main_() == 0, capsys.readouterr().out
