import numpy as np
import pytest

from wdmoe_opt import InputError
from wdmoe_opt.generate import (
    generate,
    load_channel_csv,
    load_gating_array,
    path_loss_db,
    rayleigh_gains,
    synthetic_gating_weights,
)


def test_generation_is_deterministic_in_the_seed():
    a = generate("wdmoe-sim", seed=5, tokens=32, layers=4)
    b = generate("wdmoe-sim", seed=5, tokens=32, layers=4)
    c = generate("wdmoe-sim", seed=6, tokens=32, layers=4)
    assert a.content_hash == b.content_hash != c.content_hash


def test_paper_preset_matches_section_v_a():
    inst = generate("wdmoe-sim", seed=0, tokens=8)
    s = inst.system
    assert inst.gating_weights.shape == (32, 8, 8) and inst.identity_placement
    assert s.total_bandwidth_hz == 100e6 and s.bs_power_w == 10 and (s.tx_power_w == 0.2).all()
    assert inst.model.token_bits == 16 * 4096
    assert np.isclose(s.noise_psd_w_per_hz, 10 ** (-17.4) / 1000)


def test_testbed_preset_puts_the_other_experts_on_the_server():
    inst = generate("wdmoe-testbed", seed=0, tokens=8)
    assert inst.n_devices == 5
    assert (inst.placement[0] == [0, 1, 2, 3, 4, 4, 4, 4]).all()


def test_path_loss_and_rayleigh_mean_amplitude():
    assert np.isclose(path_loss_db(1.0, 1.0), 32.4)
    assert np.isclose(path_loss_db(100.0, 3.5), 32.4 + 20 * np.log10(3.5) + 40)
    rng = np.random.default_rng(0)
    d = np.array([50.0, 200.0])
    g = rayleigh_gains(rng, d, 3.5, layers=20_000)            # [I, U]
    mean_amp = np.sqrt(g).mean(axis=0)
    assert np.allclose(mean_amp, 10 ** (-path_loss_db(d, 3.5) / 20), rtol=0.02)


def test_fast_fading_draws_one_gain_per_layer():
    inst = generate("wdmoe-sim", seed=0, tokens=8, layers=3, fast_fading=True)
    assert inst.system.gain_down.shape == (3, 8) and inst.system.fast_fading


def test_gating_statistics_are_controllable():
    rng = np.random.default_rng(1)
    flat = synthetic_gating_weights(rng, 2, 4000, 8, popularity_skew=0.0)
    skewed = synthetic_gating_weights(rng, 2, 4000, 8, popularity_skew=3.0)
    share = lambda w: np.bincount(w[0].argmax(axis=1), minlength=8) / w.shape[1]  # noqa: E731
    assert share(flat).max() < 0.2 < share(skewed).max()
    agree = lambda w: (w[0].argmax(1) == w[1].argmax(1)).mean()  # noqa: E731
    low = synthetic_gating_weights(rng, 2, 4000, 8, layer_correlation=0.0)
    high = synthetic_gating_weights(rng, 2, 4000, 8, layer_correlation=0.95)
    assert agree(high) > agree(low) + 0.3


@pytest.mark.parametrize("params, field", [
    (dict(colour=1), "colour"),
    (dict(experts=6, devices=4), "placement"),
    (dict(distances_m=(1.0, 2.0)), "distances_m"),
    (dict(tokens=0), "tokens"),
    (dict(total_bandwidth_hz=-1.0), "total_bandwidth_hz"),
])
def test_bad_generator_parameters(params, field):
    with pytest.raises(InputError) as err:
        generate("wdmoe-sim", seed=0, layers=2, **params)
    assert err.value.field == field


def test_unknown_preset():
    with pytest.raises(InputError, match="known: wdmoe-sim"):
        generate("nope")


def test_gating_import_detects_weights_and_logits(tmp_path):
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 5, 4))
    np.save(tmp_path / "l.npy", logits)
    w = load_gating_array(tmp_path / "l.npy")
    assert np.allclose(w.sum(-1), 1)
    assert np.allclose(w, np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    np.savez(tmp_path / "w.npz", weights=w, other=np.zeros(3))
    assert np.array_equal(load_gating_array(tmp_path / "w.npz"), w)
    with pytest.raises(InputError, match="holds NaN"):
        np.save(tmp_path / "bad.npy", np.full((2, 2, 2), np.nan))
        load_gating_array(tmp_path / "bad.npy")
    inst = generate("wdmoe-sim", seed=0, gating_weights=w)
    assert inst.gating_weights.shape == (2, 5, 4) and inst.n_devices == 4


def test_channel_csv_per_device_and_per_layer(tmp_path):
    (tmp_path / "c.csv").write_text("device,gain_down,gain_up\n1,2e-9,3e-9\n0,1e-9,4e-9\n")
    down, up = load_channel_csv(tmp_path / "c.csv")
    assert np.allclose(down, [1e-9, 2e-9]) and np.allclose(up, [4e-9, 3e-9])
    rows = "".join(f"{i},{k},{(i + 1) * 1e-9},{(k + 1) * 1e-9}\n"
                   for i in range(3) for k in range(2))
    (tmp_path / "f.csv").write_text("layer,device,gain_down,gain_up\n" + rows)
    down, up = load_channel_csv(tmp_path / "f.csv")
    assert down.shape == (3, 2) and np.allclose(down[:, 1], [1e-9, 2e-9, 3e-9])
    (tmp_path / "g.csv").write_text("device,gain_down,gain_up\n0,1e-9,1e-9\n0,1e-9,1e-9\n")
    with pytest.raises(InputError, match="exactly one row per device"):
        load_channel_csv(tmp_path / "g.csv")
