"""``wdmoe-opt simulate``: the online serving simulation (:mod:`wdmoe_opt.simulate`)."""

from __future__ import annotations

import csv
import json
from dataclasses import fields
from pathlib import Path

import click

from ..errors import InputError
from ..simulate import POLICIES, SimConfig, plot_runs, simulate
from ._params import FiniteFloat, parse_assignments


@click.command("simulate")
@click.option("--policy", "policies", multiple=True, type=click.Choice(list(POLICIES)),
              help="Policy to run; repeatable [default: all].")
@click.option("--duration", type=FiniteFloat(0, low_open=True),
              help="Seconds during which requests arrive [default: 120].")
@click.option("--rate", type=FiniteFloat(0, low_open=True),
              help="Poisson arrival rate, requests per second [default: 0.5].")
@click.option("--max-batch", type=click.IntRange(min=1), help="Requests per batch [default: 8].")
@click.option("--sigma-db", type=FiniteFloat(0),
              help="Channel-estimate error in dB [default: 2].")
@click.option("--seed", type=click.IntRange(min=0), help="Seed of every draw [default: 0].")
@click.option("--option", "opts", multiple=True, metavar="NAME=VALUE",
              help="Any other simulation knob (see docs/simulation.md); repeatable.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Write simulation.png and simulation.csv (per-request latencies) here.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary per policy as JSON.")
def command(policies, duration, rate, max_batch, sigma_db, seed, opts, out, as_json):
    """Serve Poisson requests over moving devices; compare selection/bandwidth policies.

    \b
    Example:
      wdmoe-opt simulate --duration 120 --rate 2 --seed 0 --out sim-out
      wdmoe-opt simulate --policy wdmoe --policy topk-uniform --json
    """
    values = parse_assignments(opts, "--option")
    known = {f.name for f in fields(SimConfig)}
    for name in values:
        if name not in known:
            raise InputError("--option", "names no simulation knob (" + ", ".join(sorted(known))
                             + ")", name)
    for name, value in (("duration_s", duration), ("rate_per_s", rate),
                        ("max_batch", max_batch), ("sigma_db", sigma_db), ("seed", seed)):
        if value is not None:
            if name in values:
                raise InputError("--option", f"sets {name}, which its own flag sets too", name)
            values[name] = value
    config = SimConfig(**values)
    config.check()
    names = list(policies) or list(POLICIES)
    runs = _run_with_progress(config, names)
    summaries = [r.summary() for r in runs]
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        plot_runs(runs, folder / "simulation.png")
        with open(folder / "simulation.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["policy", "request", "arrival_s", "finish_s", "prompt_tokens",
                             "output_tokens"])
            for r in runs:
                for q in r.requests:
                    writer.writerow([r.policy, q.id, q.arrival_s, q.finish_s, q.prompt.size,
                                     q.output_tokens])
    if as_json:
        click.echo(json.dumps({"config": config.as_dict(), "policies": summaries}, indent=1))
        return 0
    click.echo(_table(summaries))
    return 0


def _run_with_progress(config: SimConfig, names: list[str]):
    from rich.console import Console
    from rich.progress import Progress

    horizon = config.duration_s + config.drain_s
    with Progress(console=Console(stderr=True), transient=True) as bar:
        tasks = {n: bar.add_task(f"simulating {n}", total=config.duration_s) for n in names}

        def report(name: str, now: float) -> None:
            bar.update(tasks[name], completed=min(now, config.duration_s))
            if now >= horizon:
                bar.update(tasks[name], completed=config.duration_s)

        runs = simulate(config, names, progress=report)
        for n in names:
            bar.update(tasks[n], completed=config.duration_s)
    return runs


def _table(summaries: list[dict]) -> str:
    head = ("policy", "arrived", "finished", "p50 s", "p95 s", "p99 s", "energy J",
            "J/token", "tokens/s")
    keys = ("policy", "arrived", "finished", "latency_p50_s", "latency_p95_s", "latency_p99_s",
            "energy_j", "energy_per_token_j", "throughput_tokens_per_s")
    rows = [[f"{s[k]:.3f}" if isinstance(s[k], float) else str(s[k]) for k in keys]
            for s in summaries]
    width = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, width, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, width, strict=True)) for r in rows]
    return "\n".join(lines)
