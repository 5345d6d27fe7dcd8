"""Readable summaries (rich tables) of instances and solutions."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from ..model import Instance, Selection
from ..model import latency as lat
from ..solution import Solution


def _ms(x: float) -> str:
    return "inf" if not np.isfinite(x) else f"{x * 1e3:,.3f}"


def _print_p4(con: Console, solution: Solution, tol: str) -> None:
    """P4's totals: energy with its bound, the tightest budget and deadline margins."""
    x = dict(solution.extra)
    gap = "-" if x.get("energy_gap") is None else f"{x['energy_gap']:.2e}"
    con.print(f"[bold]energy {x['energy_j']:,.6g} J[/]   lower bound "
              f"{_maybe(x.get('energy_lower_bound_j'), ',.6g')} J   gap {gap}{tol}")
    dev, budget = np.asarray(x["deviation_max"]), np.asarray(x["deviation_budget"])
    deadline = np.asarray(x["deadline_s"])
    with np.errstate(divide="ignore", invalid="ignore"):
        use = np.where(budget > 0, dev / budget, np.where(dev > 0, np.inf, 0.0))
    con.print(f"deviation max {dev.max():.4g}, at most {use.max():.1%} of its layer's budget"
              f"   latency per batch {solution.objective_s:,.4f} s, slowest layer "
              f"{solution.layer_latency_s.max():.4g} s (deadline {deadline.min():.4g} s)   "
              f"expert invocations {solution.expert_invocations:,}")
    for v in x.get("violations", ()):
        con.print(f"[red]{v}[/]")


def _maybe(x, fmt: str) -> str:
    if x is None:
        return "-"
    return format(x, fmt) if abs(x) < 1e9 else f"{x:.4g}"


def print_solution(solution: Solution, instance: Instance, console: Console | None = None,
                   tables: bool = True):
    """Totals, then (with ``tables``) per layer (latency, slowest device) and per device
    (bandwidth, load)."""
    con = console or Console(soft_wrap=True)
    I, J, E = instance.gating_weights.shape
    t = lat.device_time_s(instance, solution.selection, solution.bandwidth_hz)
    u, _ = lat.device_loads(instance, solution.selection)
    slowest = t.argmax(axis=1)
    extra = dict(solution.extra)
    parts = [f"{k.removesuffix('_method')} {extra[k]}" for k in
             ("selection_method", "bandwidth_method") if k in extra]
    con.print(f"[bold]{instance.name}[/]: {I} layers x {J} tokens x {E} experts, "
              f"{instance.n_devices} devices, {instance.system.total_bandwidth_hz / 1e6:g} MHz")
    con.print(f"problem {solution.problem}   method {solution.method}"
              + (f" ({', '.join(parts)})" if parts else "")
              + f"   status [bold]{solution.status}[/]   solve time {solution.solve_time_s:.3f} s")
    gap = "-" if solution.gap is None else f"{solution.gap:.2e}"
    tol = (f" (optimal within {solution.tolerance:.0e})" if solution.tolerance is not None
           and solution.status == "optimal" else "")
    if solution.problem == "p2":
        con.print(f"[bold]WLR total {solution.wlr_total:,.2f}[/]   upper bound "
                  f"{_maybe(solution.wlr_upper_bound, ',.2f')}   gap {gap}{tol}")
        con.print(f"latency per batch {solution.objective_s:,.4f} s   retained weight "
                  f"{solution.retained_weight:.1%}   expert invocations "
                  f"{solution.expert_invocations:,}")
    elif solution.problem == "p4":
        _print_p4(con, solution, tol)
    else:
        con.print(f"[bold]latency per batch {_maybe(solution.objective_s, ',.4f')} s[/]   "
                  f"lower bound {_maybe(solution.lower_bound_s, ',.4f')} s   gap {gap}{tol}")
        con.print(f"WLR total {solution.wlr_total:,.2f}   retained weight "
                  f"{solution.retained_weight:.1%}   expert invocations "
                  f"{solution.expert_invocations:,}")
    counts = np.bincount(slowest, minlength=instance.n_devices)
    worst = int(counts.argmax())
    bottleneck = f"slowest device: {worst} (bottleneck in {int(counts[worst])} of {I} layers)"
    if not tables:
        con.print(bottleneck)
        return
    layers = Table(title="per layer (attention waiting latency, eq. 11)", title_justify="left")
    for col in ("layer", "latency ms", "slowest device", "its tokens"):
        layers.add_column(col, justify="right")
    for i in range(I):
        k = int(slowest[i])
        layers.add_row(str(i), _ms(solution.layer_latency_s[i]), str(k), str(int(u[i, k])))
    con.print(layers)
    devices = Table(title="per device", title_justify="left")
    for col in ("device", "bandwidth MHz", "tokens/layer", "bottleneck in",
                "comm ms/tok", "comp ms/tok"):
        devices.add_column(col, justify="right")
    c = lat.comm_time_per_token_s(instance, solution.bandwidth_hz).mean(axis=0)
    a = lat.compute_time_per_token_s(instance)
    for k in range(instance.n_devices):
        devices.add_row(str(k), f"{solution.bandwidth_hz[k] / 1e6:.3f}", f"{u[:, k].mean():.1f}",
                        str(int(counts[k])), _ms(c[k]), _ms(a[k]))
    con.print(devices)
    con.print(bottleneck)


def print_instance(instance: Instance, console: Console | None = None):
    """Sizes, Top-K load statistics, per-device rates and per-token times at the uniform split."""
    con = console or Console(soft_wrap=True)
    I, J, E = instance.gating_weights.shape
    m, s = instance.model, instance.system
    con.print(f"[bold]{instance.name}[/]  {instance.content_hash}")
    con.print(f"model: {I} layers, {J} tokens, {E} experts, top-{m.top_k}; "
              f"{m.token_bits:,.0f} bits/token (eq. 4), {m.token_flops:,.0f} FLOP/token (eq. 5)")
    con.print(f"system: {instance.n_devices} devices, {s.total_bandwidth_hz / 1e6:g} MHz, "
              f"N0 {s.noise_psd_w_per_hz:.3e} W/Hz, BS {s.bs_power_w:g} W, "
              f"{'fast' if s.fast_fading else 'slow'} fading, "
              f"{'identity' if instance.identity_placement else 'shared'} placement")
    prov = dict(instance.provenance)
    if prov:
        con.print("provenance: " + ", ".join(f"{k}={prov[k]}" for k in
                                              ("generator", "preset", "seed", "source")
                                              if k in prov))
    p4 = []
    if s.local is not None:
        p4.append(f"local devices {np.flatnonzero(s.local).tolist()}")
    if instance.deadlines_s is not None:
        p4.append(f"deadline {instance.deadlines_s.min():.4g}-{instance.deadlines_s.max():.4g}"
                  " s per layer")
    if instance.similarity is not None:
        p4.append(f"similarity tables ({instance.similarity.source or 'no source'})")
    if p4:
        con.print("P4 (docs/energy.md): " + "; ".join(p4))
    b = lat.uniform_bandwidth_hz(instance)
    topk = Selection.topk(instance)
    u, p = lat.device_loads(instance, topk)
    down, up = lat.link_rates_bps(instance, b)
    c = lat.comm_time_per_token_s(instance, b)
    a = lat.compute_time_per_token_s(instance)
    t = lat.device_time_s(instance, topk, b)
    table = Table(title="per device at the uniform split, router Top-K selection",
                  title_justify="left")
    for col in ("device", "experts/layer", "down Mb/s", "up Mb/s", "comm ms/token",
                "compute ms/token", "tokens/layer mean", "max", "time ms/layer"):
        table.add_column(col, justify="right")
    experts_per_device = np.bincount(instance.placement.ravel(), minlength=instance.n_devices) / I
    for k in range(instance.n_devices):
        table.add_row(str(k), f"{experts_per_device[k]:g}", f"{down[:, k].mean() / 1e6:,.1f}",
                      f"{up[:, k].mean() / 1e6:,.1f}", _ms(c[:, k].mean()), _ms(a[k]),
                      f"{u[:, k].mean():.1f}", str(int(u[:, k].max())), _ms(t[:, k].mean()))
    con.print(table)
    layer = t.max(axis=1)
    comm_share = float((np.where(u > 0, u * c, 0)).sum() / t.sum()) if t.sum() > 0 else 0.0
    bottleneck = np.bincount(t.argmax(axis=1), minlength=instance.n_devices)
    con.print(f"Top-K at uniform split: latency per batch {layer.sum():,.4f} s "
              f"(layer mean {layer.mean() * 1e3:,.2f} ms); communication is {comm_share:.0%} "
              f"of device time; bottleneck device {int(bottleneck.argmax())} in "
              f"{int(bottleneck.max())} of {I} layers")
    idle = np.flatnonzero(u.sum(axis=0) == 0)
    if idle.size:
        con.print(f"note: devices {idle.tolist()} receive no Top-K token")
