"""Recording router probabilities with forward hooks, and instances built from them."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from wdmoe_opt.errors import InputError  # noqa: E402
from wdmoe_opt.io import read_instance, write_instance  # noqa: E402
from wdmoe_opt.torch import (  # noqa: E402
    TransformersAdapter,
    load_model,
    record_gating,
    recorded_instance,
    tiny_model,
    token_ids,
)


def test_recorded_weights_are_the_softmax_of_the_models_own_router_logits(tiny):
    ids, how = token_ids(tiny, 24, seed=1)
    w = record_gating(tiny.model, ids)
    assert how == "random-ids"
    assert w.shape == (2, 24, 8) and w.dtype == np.float64
    with torch.no_grad():
        own = tiny.model(ids, output_router_logits=True).router_logits
    expected = np.stack([torch.softmax(g.double(), dim=-1).numpy() for g in own])
    np.testing.assert_allclose(w, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-12)


def test_recording_leaves_no_hook_behind(mixtral):
    ids, _ = token_ids(mixtral, 8)
    record_gating(mixtral.model, ids)
    routers = TransformersAdapter(mixtral.model).routers(mixtral.model)
    assert len(routers) == 2
    assert all(not r.module._forward_hooks for r in routers)


def test_tiny_models_are_reproducible_from_the_seed():
    ids, _ = token_ids(tiny_model("tiny-olmoe", 0), 16, seed=0)
    a = record_gating(tiny_model("tiny-olmoe", 3).model, ids)
    b = record_gating(tiny_model("tiny-olmoe", 3).model, ids)
    c = record_gating(tiny_model("tiny-olmoe", 4).model, ids)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_text_bytes_map_into_the_vocabulary(mixtral, tmp_path):
    text = tmp_path / "t.txt"
    text.write_bytes(bytes([0, 7, 255, 65, 66, 67]))
    ids, how = token_ids(mixtral, 5, text=text)
    assert how == "bytes-mod-vocab"
    assert ids.tolist() == [[0, 7, 255, 65, 66]]
    with pytest.raises(InputError, match="gives 6 tokens"):
        token_ids(mixtral, 7, text=text)


def test_random_ids_depend_on_the_seed_only(mixtral):
    a, _ = token_ids(mixtral, 32, seed=5)
    b, _ = token_ids(mixtral, 32, seed=5)
    assert torch.equal(a, b) and int(a.max()) < mixtral.vocab_size
    with pytest.raises(InputError, match="tokens"):
        token_ids(mixtral, 0)


def test_a_local_checkpoint_records_like_the_model_it_was_saved_from(mixtral, tmp_path):
    mixtral.model.save_pretrained(tmp_path / "ckpt")
    loaded = load_model(tmp_path / "ckpt")
    assert loaded.name == "ckpt" and loaded.tokenizer is None
    ids, _ = token_ids(mixtral, 16)
    np.testing.assert_allclose(record_gating(loaded.model, ids),
                               record_gating(mixtral.model, ids), atol=1e-12)


def test_unknown_models_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="model name"):
        load_model("tiny-gpt")
    with pytest.raises(InputError, match="not a transformers MoE model"):
        TransformersAdapter(torch.nn.Linear(2, 2))


def test_recorded_instance_takes_shapes_and_top_k_from_the_recording(mixtral, tmp_path):
    ids, how = token_ids(mixtral, 12)
    w = record_gating(mixtral.model, ids)
    inst = recorded_instance(w, top_k=2, source="recorded:tiny-mixtral", seed=2,
                             recording={"tokens": how}, devices=3, placement="round-robin")
    assert inst.gating_weights.shape == (2, 12, 8) and inst.n_devices == 3
    assert inst.model.top_k == 2
    assert inst.provenance["source"] == "recorded:tiny-mixtral"
    assert inst.provenance["recording"] == {"tokens": "random-ids"}
    back = read_instance(write_instance(inst, tmp_path / "rec.npz"))
    assert back.content_hash == inst.content_hash


def test_a_checkpoint_with_a_tokenizer_tokenizes_the_text(mixtral, tmp_path):
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = Tokenizer(models.WordLevel({"[UNK]": 0, "wireless": 5, "experts": 9},
                                       unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    mixtral.model.save_pretrained(tmp_path / "ckpt")
    transformers.PreTrainedTokenizerFast(tokenizer_object=words).save_pretrained(tmp_path / "ckpt")
    text = tmp_path / "t.txt"
    text.write_text("wireless experts wireless mixture")
    ids, how = token_ids(load_model(tmp_path / "ckpt"), 4, text=text)
    assert how == "tokenizer" and ids.tolist() == [[5, 9, 5, 0]]
