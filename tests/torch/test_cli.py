"""``wdmoe-opt record`` end to end: record, solve, check."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from wdmoe_opt.cli import main  # noqa: E402
from wdmoe_opt.io import read_instance  # noqa: E402
from wdmoe_opt.torch import tiny_model  # noqa: E402


@pytest.mark.parametrize("model", ["tiny-mixtral", "tiny-qwen2-moe", "tiny-olmoe"])
def test_a_recorded_instance_is_solved_and_checked_end_to_end(model, tmp_path, capsys):
    inst, sol = tmp_path / "rec.json", tmp_path / "sol.json"
    assert main(["record", "--model", model, "--tokens", "24", "--seed", "1",
                 "-o", str(inst)]) == 0
    assert "2 MoE layers x 24 tokens x 8 experts" in capsys.readouterr().out
    rec = read_instance(inst)
    assert rec.provenance["source"] == f"recorded:{model}"
    assert rec.provenance["recording"]["tokens"] == "random-ids"
    assert main(["solve", str(inst), "--selection", "alg1", "-o", str(sol)]) == 0
    assert main(["check", str(inst), str(sol)]) == 0
    assert json.loads(sol.read_text())["method"].endswith("sequential")


def test_record_from_a_checkpoint_path_with_text_and_model_sizes(tmp_path, capsys):
    tiny_model("tiny-qwen2-moe", seed=0).model.save_pretrained(tmp_path / "qwen")
    text = tmp_path / "prompt.txt"
    text.write_text("wireless experts " * 4)
    out = tmp_path / "rec.npz"
    assert main(["record", "--model", str(tmp_path / "qwen"), "--tokens", "20", "--text",
                 str(text), "--sizes", "model", "--devices", "4", "--placement", "round-robin",
                 "-o", str(out)]) == 0
    rec = read_instance(out)
    assert rec.n_devices == 4 and rec.gating_weights.shape == (2, 20, 8)
    assert rec.provenance["recording"]["tokens"] == "bytes-mod-vocab"
    assert rec.model.dims["hidden_dim"] == 32 and rec.model.dims["ffn_hidden_dim"] == 64
    np.testing.assert_allclose(rec.gating_weights.sum(axis=-1), 1.0, atol=1e-12)


def test_bad_record_arguments_exit_2_with_one_line(tmp_path, capsys):
    assert main(["record", "--model", "tiny-gpt", "-o", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model") and "\n" not in err
    assert main(["record", "--model", "tiny-mixtral", "--tokens", "0",
                 "-o", str(tmp_path / "x.json")]) == 2
