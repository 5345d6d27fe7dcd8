"""The shipped trained model ``wdmoe-tiny-moe`` and ``wdmoe-opt evaluate``."""

import json
import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from wdmoe_opt.cli import main  # noqa: E402
from wdmoe_opt.errors import InputError  # noqa: E402
from wdmoe_opt.io import read_instance  # noqa: E402
from wdmoe_opt.model import topk_mask  # noqa: E402
from wdmoe_opt.torch import (  # noqa: E402
    load_model,
    method_policy,
    next_token_scores,
    record_gating,
    recorded_instance,
    run_with_policy,
    token_ids,
    windows,
)
from wdmoe_opt.torch.zoo import (  # noqa: E402
    heldout_sequences,
    heldout_text,
    pydoc_corpus,
    split_documents,
    training_record,
)

NAME = "wdmoe-tiny-moe"
#: Cross-machine tolerance of a recorded loss (nats per token). The forward pass is
#: float32: a logit differs across BLAS kernels by ~1e-6 relative, i.e. ~1e-5 nats at
#: logits of ~10 nats; and a router tie broken the other way changes one token's
#: loss by O(1) nats out of the >= 7,874 tokens averaged, 1.3e-4 per flip. 5e-4
#: allows a few flips and is still 1,000x below the gap to the untrained model.
LOSS_TOL = 5e-4


@pytest.fixture(scope="module")
def tiny_moe():
    return load_model(NAME)


@pytest.fixture(scope="module")
def heldout(tiny_moe):
    return heldout_sequences(tiny_moe, NAME)


def test_the_shipped_model_reproduces_its_recorded_heldout_loss_on_a_sample(tiny_moe, heldout):
    # the training curve's last point: every 4th held-out sequence, after the last step
    recorded = training_record(NAME)["curve"][-1]
    got = next_token_scores(tiny_moe.model, heldout[::4])
    assert got["loss_nats_per_token"] == pytest.approx(recorded["heldout_loss"], abs=LOSS_TOL)


@pytest.mark.slow
def test_the_shipped_model_reproduces_its_recorded_heldout_loss(tiny_moe, heldout):
    recorded = training_record(NAME)["heldout"]
    got = next_token_scores(tiny_moe.model, heldout)
    assert got["tokens"] == recorded["tokens"]
    assert got["loss_nats_per_token"] == pytest.approx(recorded["loss_nats_per_token"],
                                                       abs=LOSS_TOL)
    assert got["top1_accuracy"] == pytest.approx(recorded["top1_accuracy"],
                                                 abs=10 / recorded["tokens"])


def test_the_shipped_model_learned_far_below_the_uniform_byte_model():
    rec = training_record(NAME)
    loss = rec["heldout"]["loss_nats_per_token"]
    # uniform over bytes is ln 256 = 5.55 nats; the untrained model starts there
    assert rec["curve"][0]["heldout_loss"] > math.log(256) - 0.1
    assert loss < 0.5 * math.log(256)


def test_the_split_is_by_document_and_the_heldout_text_is_the_heldout_documents():
    rec = training_record(NAME)["corpus"]
    docs, digest = pydoc_corpus()
    train, held = split_documents(docs)
    assert not set(train) & set(held) and sorted(train + held) == sorted(docs)
    assert len(held) == len(docs) // 8 + (len(docs) % 8 > 3)
    if digest != rec["sha256"]:
        pytest.skip(f"this Python's pydoc topics differ from the training corpus "
                    f"(Python {rec['python']}); the shipped heldout.txt still is the held-out text")
    assert (train, held) == (rec["train_documents"], rec["heldout_documents"])
    assert heldout_text(NAME).read_bytes() == "\n\n".join(docs[k] for k in held).encode()


def test_the_corpus_hash_covers_keys_and_text(monkeypatch):
    import pydoc_data.topics

    _, before = pydoc_corpus()
    monkeypatch.setitem(pydoc_data.topics.topics, "zz-extra", "")
    _, after = pydoc_corpus()
    assert len(before) == 64 and before != after


def test_windows_cut_a_prefill_batch_of_independent_sequences():
    ids = np.arange(10)
    np.testing.assert_array_equal(windows(ids, 5).numpy(), ids.reshape(2, 5))
    np.testing.assert_array_equal(windows(ids, 4, whole=False).numpy(), ids[:8].reshape(2, 4))
    with pytest.raises(InputError, match="context"):
        windows(ids, 4)
    with pytest.raises(InputError, match="context"):
        windows(ids, 11, whole=False)
    with pytest.raises(InputError, match="context"):
        windows(ids, 0)


def test_a_weight_floor_method_runs_live_and_keeps_its_floor_in_every_layer(mixtral):
    ids, _ = token_ids(mixtral, 32, seed=3)
    inst = recorded_instance(record_gating(mixtral.model, ids), top_k=2,
                             source="recorded:tiny-mixtral")
    _, w, q = run_with_policy(mixtral.model, ids, method_policy(
        inst, "p1-floor/greedy", min_retained_weight=0.8, bandwidth="uniform"))
    top = topk_mask(w, 2)
    assert not (q & ~top).any() and (q.sum(axis=-1) >= 1).all()
    per_layer = (w * q).sum(axis=(1, 2)) / (w * top).sum(axis=(1, 2))
    assert (per_layer >= 0.8 - 1e-12).all() and (q.sum(axis=-1) == 1).any()
    # a P1 composition runs live too
    _, _, q1 = run_with_policy(mixtral.model, ids, method_policy(inst, "p1/sequential"))
    assert (q1.sum(axis=-1) >= 1).all()
    with pytest.raises(InputError, match="P2 .* or P1"):
        method_policy(inst, "p3/exact")
    with pytest.raises(InputError, match="bandwidth_hz"):
        method_policy(inst, "p1-floor/greedy", bandwidth_hz=np.ones(8))
    with pytest.raises(InputError, match="min_retained_weight"):
        method_policy(inst, "alg1", min_retained_weight=0.8)
    with pytest.raises(InputError):
        method_policy(inst, "alg1", no_such_option=1)


def _evaluate(capsys, *args) -> dict:
    assert main(["evaluate", "--model", NAME, "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_evaluate_under_topk_a_policy_and_a_replayed_solution(tmp_path, capsys):
    text = str(heldout_text(NAME))
    router = _evaluate(capsys, "--text", text, "--tokens", "256")
    assert router["sequences"] == 2 and router["context"] == 128 and router["tokens"] == 254
    assert router["retained_weight"] == 1.0 and router["experts_per_token"] == 2.0
    assert router["loss_nats_per_token"] < 0.5 * math.log(256)
    # the router's own Top-2 run as a policy is the unmodified model, exactly
    topk = _evaluate(capsys, "--text", text, "--tokens", "256", "--policy", "topk")
    assert topk["loss_nats_per_token"] == router["loss_nats_per_token"]
    # a Top-K selection solved offline on the recorded instance and replayed: the same
    inst, sol = tmp_path / "rec.json", tmp_path / "sol.json"
    assert main(["record", "--model", NAME, "--text", text, "--tokens", "256",
                 "-o", str(inst)]) == 0
    assert read_instance(inst).gating_weights.shape == (4, 256, 8)
    for selection in ("topk", "alg1"):
        assert main(["solve", str(inst), "--selection", selection, "--bandwidth", "uniform",
                     "-o", str(sol)]) == 0
        capsys.readouterr()
        replay = _evaluate(capsys, "--text", text, "--tokens", "256", "--solution", str(sol))
        solved = json.loads(sol.read_text())
        # the replayed selection is the solved one (the live weights after layer 0 are
        # not the recorded ones once a layer runs fewer experts)
        assert replay["experts_per_token"] == solved["expert_invocations"] / (4 * 256)
    assert replay["experts_per_token"] < 2.0 and replay["retained_weight"] < 1.0
    assert replay["loss_nats_per_token"] != router["loss_nats_per_token"]
    # a solution of other tokens is refused, naming the flag
    assert main(["evaluate", "--model", NAME, "--text", text, "--tokens", "128",
                 "--solution", str(sol)]) == 2
    assert capsys.readouterr().err.startswith("error: --solution")


def test_bad_evaluate_arguments_exit_2_with_one_line(tmp_path, capsys):
    text = str(heldout_text(NAME))
    sol = tmp_path / "sol.json"
    bad = [["--policy", "alg1", "--solution", str(sol)], ["--option", "theta0=0.7"],
           ["--policy", "p3/exact"], ["--tokens", "200", "--context", "128"],
           ["--batch", "0"], ["--tokens", str(10**9)]]
    for args in bad:
        assert main(["evaluate", "--model", NAME, "--text", text, *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, args


def test_record_refuses_a_context_that_does_not_divide_the_tokens(tmp_path, capsys):
    assert main(["record", "--model", NAME, "--text", str(heldout_text(NAME)), "--tokens",
                 "200", "-o", str(tmp_path / "x.json")]) == 2
    assert "context" in capsys.readouterr().err


def test_the_checkpoint_ships_with_the_package():
    import tomllib
    from pathlib import Path

    from wdmoe_opt.torch.zoo import ZOO, zoo_path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["wdmoe_opt.torch"]
    assert "checkpoints/*/*" in data
    assert zoo_path(NAME).parent == ZOO and ZOO.parent.name == "torch"
    assert {p.name for p in zoo_path(NAME).iterdir()} >= {
        "config.json", "heldout.txt", "model.safetensors", "training.json"}


def test_a_decode_step_is_the_last_token_of_each_prefill_sequence():
    from wdmoe_opt.torch import record_text

    text = heldout_text(NAME)
    prefill = record_text(NAME, 256, text=text)
    decode = record_text(NAME, 256, text=text, decode=True)
    assert prefill.gating_weights.shape == (4, 256, 8)
    assert decode.gating_weights.shape == (4, 2, 8)
    np.testing.assert_array_equal(decode.gating_weights, prefill.gating_weights[:, 127::128])
    # priced at the preset's model (Mixtral 8x7B), not at the tiny model's dims
    assert decode.model.dims["hidden_dim"] == 4096
    assert decode.provenance["recording"]["decode"] is True


def test_a_recorded_tier_is_built_and_kept_while_its_file_is_unchanged(tmp_path):
    from wdmoe_opt.harness.library import build_library

    spec = {"name": "rec-j1", "tier": "recorded", "recording": {
        "model_spec": NAME, "tokens": 128, "text": str(heldout_text(NAME)), "decode": True}}
    lib = build_library(tmp_path / "lib", [spec])
    (entry,) = lib.entries
    assert entry.tier == "recorded" and entry.generator is None
    assert entry.sizes["tokens"] == 1 and entry.sizes["layers"] == 4
    assert read_instance(tmp_path / "lib" / entry.file).content_hash == entry.hash
    stamp = (tmp_path / "lib" / entry.file).stat().st_mtime_ns
    assert build_library(tmp_path / "lib", [spec]).entries == lib.entries
    assert (tmp_path / "lib" / entry.file).stat().st_mtime_ns == stamp
