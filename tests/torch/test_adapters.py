"""The adapter protocol on a plain torch MoE (no transformers), as docs/torch.md shows it."""

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from wdmoe_opt.model import topk_mask  # noqa: E402
from wdmoe_opt.torch import MoEAdapter, Router, record_gating, run_with_policy  # noqa: E402

E, K, H, V = 4, 2, 8, 16


class ToyBlock(nn.Module):
    """Mixtral-style: softmax, Top-K, renormalize, weighted sum of expert outputs."""

    def __init__(self):
        super().__init__()
        self.router = nn.Linear(H, E, bias=False)
        self.experts = nn.ModuleList(nn.Linear(H, H) for _ in range(E))
        self.calls = torch.zeros(E, dtype=torch.long)

    def forward(self, x):
        w, idx = torch.topk(torch.softmax(self.router(x), dim=-1), K, dim=-1)
        w = w / w.sum(dim=-1, keepdim=True)
        out = torch.stack([e(x) for e in self.experts], dim=1)  # [T, E, H]
        picked = torch.gather(out, 1, idx[..., None].expand(-1, -1, H))
        self.calls += torch.bincount(idx[w > 0], minlength=E)
        return x + (w[..., None] * picked).sum(dim=1)


class ToyMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(V, H)
        self.blocks = nn.ModuleList(ToyBlock() for _ in range(2))
        self.head = nn.Linear(H, V)

    def forward(self, ids):
        x = self.embed(ids.flatten())
        for b in self.blocks:
            x = b(x)
        return SimpleNamespace(logits=self.head(x)[None])


class ToyAdapter:
    def routers(self, model):
        return [Router(f"blocks.{i}.router", b.router, experts=E, top_k=K)
                for i, b in enumerate(model.blocks)]

    def logits(self, router, output):
        return output

    def select(self, router, output, mask):
        return output.masked_fill(~mask, float("-inf"))


@pytest.fixture
def toy():
    with torch.random.fork_rng(devices=[]):  # no global seeding leaks out
        torch.manual_seed(0)
        model = ToyMoE().eval()
    return model, torch.arange(12)[None] % V


def test_the_toy_adapter_satisfies_the_protocol():
    assert isinstance(ToyAdapter(), MoEAdapter)


def test_a_plain_torch_moe_is_recorded_through_its_adapter(toy):
    model, ids = toy
    w = record_gating(model, ids, ToyAdapter())
    assert w.shape == (2, 12, E)
    with torch.no_grad():
        first = torch.softmax(model.blocks[0].router(model.embed(ids.flatten())).double(), -1)
    np.testing.assert_allclose(w[0], first.numpy(), atol=1e-12)


def test_a_plain_torch_moe_is_steered_through_its_adapter(toy):
    model, ids = toy
    ref, _, _ = run_with_policy(model, ids, None, ToyAdapter())
    same, _, _ = run_with_policy(model, ids, lambda _i, w: topk_mask(w, K), ToyAdapter())
    torch.testing.assert_close(same, ref)
    for b in model.blocks:
        b.calls.zero_()
    only0 = np.zeros((12, E), dtype=bool)
    only0[:, 0] = True
    out, _, q = run_with_policy(model, ids, lambda _i, _w: only0, ToyAdapter())
    assert q[:, :, 0].all() and q.sum() == 2 * 12
    assert [b.calls.tolist() for b in model.blocks] == [[12, 0, 0, 0]] * 2
    assert not torch.allclose(out, ref)
