"""The paper's Table II ablations (wdmoe_opt.harness.ablation) and ``wdmoe-opt ablation``."""

from __future__ import annotations

from wdmoe_opt.cli import main
from wdmoe_opt.harness.ablation import ablation_rows, summarize


def test_p1_ablation_ratios_and_command(tmp_path):
    rows = ablation_rows(seeds=range(2), tokens=32, layers=4)
    summary = summarize(rows).set_index("variant")
    assert list(summary.index) == ["mixtral", "no-bandwidth", "no-selection", "wdmoe"]
    assert summary.loc["mixtral", "ratio_mean"] == 1.0
    # P3 never loses to the uniform split on the same selection
    assert summary.loc["no-selection", "ratio_max"] <= 1.0 + 1e-9
    by = {(r["seed"], r["variant"]): r["latency_ms"] for r in rows}
    assert all(by[s, "wdmoe"] <= by[s, "no-bandwidth"] * (1 + 1e-9) for s in range(2))
    out = tmp_path / "t2.md"
    assert main(["ablation", "--seeds", "1", "--tokens", "16", "--set", "layers=2",
                 "-o", str(out)]) == 0
    assert "wdmoe-opt ablation" in out.read_text() and out.with_suffix(".csv").exists()
