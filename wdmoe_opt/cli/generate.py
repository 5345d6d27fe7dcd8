"""``wdmoe-opt generate``: build an instance from a preset (and recorded data)."""

from __future__ import annotations

import click

from ..errors import InputError
from ..generate import PRESETS, generate, load_channel_csv, load_gating_array
from ..io import write_instance
from ._params import parse_assignments


def _floats(text: str | None, flag: str):
    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise InputError(flag, "must be comma-separated numbers", text) from None


@click.command("generate")
@click.argument("preset", type=click.Choice(sorted(PRESETS)))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Instance file to write (.json, or .npz for the compact binary form).")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed.")
@click.option("--name", default=None, help="Instance name [default: derived].")
@click.option("--tokens", type=int, help="Tokens per batch J.")
@click.option("--layers", type=int, help="MoE layers I.")
@click.option("--experts", type=int, help="Experts per layer E.")
@click.option("--devices", type=int, help="Devices U.")
@click.option("--top-k", "top_k", type=int, help="Router Top-K.")
@click.option("--bandwidth-mhz", type=float, help="Total bandwidth B in MHz.")
@click.option("--distances", help="Comma-separated device distances in m.")
@click.option("--placement", type=click.Choice(["identity", "round-robin", "server"]),
              help="Expert placement rule.")
@click.option("--fast-fading/--slow-fading", default=None,
              help="Per-layer channel draws (fast) or one per device (slow).")
@click.option("--popularity-skew", type=float, help="Expert popularity skew (0 = uniform).")
@click.option("--layer-correlation", type=float, help="Correlation of gating across layers.")
@click.option("--gating-from", type=click.Path(dir_okay=False),
              help="Recorded gating weights or router logits (.npy/.npz, [I][J][E]).")
@click.option("--gating-kind", type=click.Choice(["auto", "weights", "logits"]),
              default="auto", show_default=True, help="How to read --gating-from.")
@click.option("--channels-from", type=click.Path(dir_okay=False),
              help="Recorded channel gains (CSV: device,gain_down,gain_up[,layer]).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
              help="Any other generator parameter (see docs/defaults.md); repeatable.")
def command(preset, output, seed, name, tokens, layers, experts, devices, top_k, bandwidth_mhz,
            distances, placement, fast_fading, popularity_skew, layer_correlation, gating_from,
            gating_kind, channels_from, sets):
    """Generate an instance of PRESET (wdmoe-sim: the paper's simulation; wdmoe-testbed).

    \b
    Example:
      wdmoe-opt generate wdmoe-sim --seed 3 --tokens 2048 -o sim.json
    """
    overrides = {k: v for k, v in dict(
        tokens=tokens, layers=layers, experts=experts, devices=devices, top_k=top_k,
        total_bandwidth_hz=None if bandwidth_mhz is None else bandwidth_mhz * 1e6,
        distances_m=_floats(distances, "--distances"), placement=placement,
        fast_fading=fast_fading, popularity_skew=popularity_skew,
        layer_correlation=layer_correlation).items() if v is not None}
    overrides.update(parse_assignments(sets, "--set"))
    weights = None if gating_from is None else load_gating_array(gating_from, gating_kind)
    gains = None if channels_from is None else load_channel_csv(channels_from)
    source = ", ".join(f"recorded:{p}" for p in (gating_from, channels_from) if p) or None
    instance = generate(preset, seed, name=name, gating_weights=weights, gains=gains,
                        source=source, **overrides)
    write_instance(instance, output)
    I, J, E = instance.gating_weights.shape
    click.echo(f"wrote {output}: {instance.name} ({I} layers x {J} tokens x {E} experts, "
               f"{instance.n_devices} devices, {instance.content_hash[:19]})")
