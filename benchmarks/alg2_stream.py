"""Algorithm 2 online: a stream of batches with noisy measured latencies.

The model's predicted per-token times are wrong by a fixed factor per device (drawn
in [0.5, 3], as a testbed's real devices differ from their spec sheet), and every
measurement carries log-normal noise. :class:`~wdmoe_opt.selection.Alg2Policy`
starts cold (model times), selects each batch, then observes the measured device
latencies and token counts. We track how far its history ``t_bar`` (eq. 30) is from
the true per-token time, and the true batch latency of its selections against the
router's Top-K and an oracle Alg 2 that knows the true times from the start.

    .venv/bin/python benchmarks/alg2_stream.py            # ~10 s

Writes ``docs/figures/p2_alg2_stream.{csv,png}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from wdmoe_opt import Selection  # noqa: E402
from wdmoe_opt.generate import generate  # noqa: E402
from wdmoe_opt.model import latency as lat  # noqa: E402
from wdmoe_opt.selection import Alg2Policy  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures"


def true_device_time(batch, selection, bias):
    """``[I, U]`` device times of the 'real' system: the model's eq. (10) times ``bias``."""
    return lat.device_time_s(batch, selection, lat.uniform_bandwidth_hz(batch)) * bias


def run_stream(batches=40, batch_tokens=128, noise=0.3, seed=0) -> pd.DataFrame:
    """Run the stream; one row per batch."""
    rng = np.random.default_rng(seed)
    inst = generate("wdmoe-sim", seed=seed, tokens=batches * batch_tokens)
    bias = rng.uniform(0.5, 3.0, inst.n_devices)
    truth = (lat.comm_time_per_token_s(inst, lat.uniform_bandwidth_hz(inst))
             + lat.compute_time_per_token_s(inst)) * bias
    policy, oracle = Alg2Policy(inst), Alg2Policy(inst)
    oracle.observe(truth, np.ones_like(truth))
    rows = []
    for b in range(batches):
        batch = inst.replace(gating_weights=inst.gating_weights[
            :, b * batch_tokens:(b + 1) * batch_tokens])
        error = np.abs(policy.per_token_latency_s() / truth - 1)
        row = {"batch": b, "t_bar_rel_error_mean": error.mean(),
               "t_bar_rel_error_max": error.max()}
        for name, pol in (("alg2", policy), ("oracle", oracle), ("topk", None)):
            sel = Selection.topk(batch) if pol is None else pol.select(batch)
            t = true_device_time(batch, sel, bias)
            row[f"latency_{name}_s"] = t.max(axis=1).sum()
            row[f"retained_{name}"] = lat.retained_weight(batch, sel)
            if name == "alg2":
                measured = t * rng.lognormal(-noise**2 / 2, noise, t.shape)  # mean 1
                policy.observe(measured, lat.device_loads(batch, sel)[1])
        rows.append(row)
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].plot(df.batch, df.t_bar_rel_error_mean, label="mean over (layer, device)")
    axes[0].plot(df.batch, df.t_bar_rel_error_max, label="max", alpha=0.7)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("batch")
    axes[0].set_ylabel("|t_bar / true - 1|  (eq. 30 history)")
    axes[0].legend()
    for name, style in (("topk", ":"), ("alg2", "-"), ("oracle", "--")):
        axes[1].plot(df.batch, df[f"latency_{name}_s"], style, label=name)
    axes[1].set_xlabel("batch")
    axes[1].set_ylabel("true batch latency (s)")
    axes[1].legend()
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Algorithm 2 online: cold start from the model, noisy measurements")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--batch-tokens", type=int, default=128)
    ap.add_argument("--noise", type=float, default=0.3, help="log-normal sigma")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    df = run_stream(args.batches, args.batch_tokens, args.noise, args.seed)
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "p2_alg2_stream.csv", index=False)
    plot(df, OUT / "p2_alg2_stream.png")
    print(df.iloc[[0, 1, 2, 5, 10, 20, -1]].to_string(index=False))


if __name__ == "__main__":
    main()
