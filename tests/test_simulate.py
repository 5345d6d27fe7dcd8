"""The online serving simulation: reproducible, conserving, and the model's latencies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wdmoe_opt import InputError
from wdmoe_opt.cli import main
from wdmoe_opt.generate.channels import path_loss_db
from wdmoe_opt.simulate import POLICIES, Policy, SimConfig, Simulation, register_selector, simulate

SMALL = dict(duration_s=8.0, rate_per_s=2.0, layers=4, devices=4, pool_tokens=64,
             prompt_min=2, prompt_max=6, output_min=1, output_max=4, max_batch=3, scenarios=4)


def _finishes(runs):
    return [[q.finish_s for q in r.requests] for r in runs]


def test_a_seed_gives_the_same_run_and_another_seed_another():
    cfg = SimConfig(**SMALL, seed=3)
    a, b = simulate(cfg), simulate(cfg)
    assert [r.summary() for r in a] == [r.summary() for r in b]
    assert _finishes(a) == _finishes(b)
    c = simulate(SimConfig(**SMALL, seed=4), ["wdmoe"])
    assert _finishes(c) != _finishes(a[:1])


def test_every_arrival_finishes_or_is_reported():
    cfg = SimConfig(**{**SMALL, "drain_s": 0.0})          # stops when arrivals stop
    poisson = Simulation(cfg, POLICIES["wdmoe"])._arrivals()
    late = [(cfg.duration_s - 1e-9, 6, 4)]                  # cannot finish in time
    sim = Simulation(cfg, POLICIES["wdmoe"], arrivals=poisson + late)
    run = sim.run()
    s = run.summary()
    assert s["arrived"] == len(sim.arrivals) == len({q.id for q in run.requests})
    assert s["finished"] + s["unfinished"] == s["arrived"]
    assert s["unfinished"] > 0
    relaxed = Simulation(SimConfig(**SMALL, drain_s=1e4), POLICIES["alg2-online"]).run()
    assert relaxed.summary()["unfinished"] == 0
    assert all(q.finish_s >= q.arrival_s for q in relaxed.requests)


@pytest.mark.parametrize("policy", ["topk-uniform", "wdmoe", "wdmoe-robust"])
def test_latency_and_energy_by_hand_on_one_device(policy):
    """One device at 100 m, no fading, no estimate error: every token takes
    ``tau = L / R_down + L / R_up + a`` at the whole bandwidth; request 1 (3 prompt
    tokens, 2 generated) runs 5 tau, request 2 arrives at 1 ms, waits, then runs 2 tau."""
    cfg = SimConfig(layers=1, devices=1, top_k=1, pool_tokens=8, fading="none", sigma_db=0.0,
                    speed_min_mps=0.0, speed_max_mps=0.0, min_distance_m=100.0,
                    cell_radius_m=100.0, max_batch=1, scenarios=2)
    sim = Simulation(cfg, POLICIES[policy], arrivals=[(0.0, 3, 2), (1e-3, 1, 1)])
    run = sim.run()
    s = sim.template.system
    m = sim.template.model
    g = 10 ** (-path_loss_db(100.0, 3.5) / 10)
    B, N0 = s.total_bandwidth_hz, s.noise_psd_w_per_hz
    rate_down = B * np.log2(1 + s.bs_power_w * g / (N0 * B))
    rate_up = B * np.log2(1 + s.tx_power_w[0] * g / (N0 * B))
    tau = m.token_bits / rate_down + m.token_bits / rate_up + m.token_flops / s.compute_flops[0]
    assert 5 * tau > 1e-3                       # request 2 does wait
    first, second = run.requests
    np.testing.assert_allclose(first.finish_s - first.arrival_s, 5 * tau, rtol=1e-12)
    np.testing.assert_allclose(second.finish_s - second.arrival_s, 7 * tau - 1e-3, rtol=1e-12)
    per_token_j = m.token_bits * (s.bs_power_w / rate_down + s.tx_power_w[0] / rate_up)
    np.testing.assert_allclose(run.energy_j, 7 * per_token_j, rtol=1e-12)
    assert run.steps == 5 and run.batches == 2


def test_decode_policy_hook_runs_a_registered_selector():
    from wdmoe_opt.simulate import SELECTORS

    calls = []

    class FirstExpert:
        sequential = True

        def __init__(self, template, config):
            pass

        def select(self, instance):
            from wdmoe_opt import Selection
            mask = np.zeros(instance.gating_weights.shape, dtype=bool)
            mask[..., 0] = True
            return Selection(mask)

        def observe(self, device_time_s, pairs):
            calls.append(pairs[:, 0].sum())

    register_selector("first-expert", FirstExpert)
    try:
        run = Simulation(SimConfig(**SMALL), Policy("first", "first-expert", "exact")).run()
    finally:
        del SELECTORS["first-expert"]
    assert len(calls) == run.steps > 0 and all(c > 0 for c in calls)


def test_bad_configuration_is_refused():
    with pytest.raises(InputError, match="prompt_min"):
        SimConfig(prompt_min=9, prompt_max=3).check()
    with pytest.raises(InputError, match="fading"):
        SimConfig(fading="nakagami").check()
    with pytest.raises(InputError, match="policy"):
        simulate(SimConfig(**SMALL), ["nope"])


def test_cli_json_summary_per_policy(capsys, tmp_path):
    args = ["simulate", "--policy", "wdmoe", "--policy", "topk-uniform", "--json",
            "--duration", "4", "--rate", "2", "--seed", "1", "--out", str(tmp_path)]
    args += [f"--option={k}={v}" for k, v in SMALL.items() if k not in ("duration_s",
                                                                          "rate_per_s")]
    assert main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [p["policy"] for p in doc["policies"]] == ["wdmoe", "topk-uniform"]
    for p in doc["policies"]:
        assert p["arrived"] == p["finished"] + p["unfinished"]
        assert {"latency_p50_s", "latency_p95_s", "latency_p99_s", "energy_j"} <= set(p)
    assert (tmp_path / "simulation.png").exists() and (tmp_path / "simulation.csv").exists()
    assert main(["simulate", "--option", "bogus=1"]) == 2


def test_the_siftmoe_policy_serves_every_request_on_less_energy():
    from wdmoe_opt.simulate import SimConfig, simulate

    config = SimConfig(duration_s=20.0, rate_per_s=0.5, layers=4, sigma_db=0.0, seed=3)
    runs = {r.policy: r.summary() for r in simulate(config, ("topk-uniform", "siftmoe"))}
    assert runs["siftmoe"]["finished"] == runs["siftmoe"]["arrived"] > 0
    assert runs["siftmoe"]["energy_j"] < runs["topk-uniform"]["energy_j"]
