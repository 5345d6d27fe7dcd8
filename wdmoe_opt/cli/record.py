"""``wdmoe-opt record``: gating weights from a torch MoE model into an instance.

Needs the ``torch`` extra; torch is imported only when the command runs.
"""

from __future__ import annotations

import importlib.util

import click

from ..errors import BackendUnavailable
from ..generate import PRESETS, load_channel_csv
from ..io import write_instance

#: What ``record`` needs, with the install line (the CPU wheel, never a bare ``torch``).
INSTALL_HINT = "pip install torch==2.13.0 'transformers>=5'  (the CPU wheel; never a bare torch)"


def require_torch(command: str = "record") -> None:
    """Raise :class:`BackendUnavailable` with the install hint if the extra is missing."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise BackendUnavailable(f"{command} needs {' and '.join(missing)}: {INSTALL_HINT}")


@click.command("record")
@click.option("--model", "model_spec", required=True, metavar="wdmoe-tiny-moe|tiny-mixtral|"
              "tiny-qwen2-moe|tiny-olmoe|PATH",
              help="The shipped trained model or a tiny random model by name, or a local "
                   "transformers checkpoint directory.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Instance file to write (.json, or .npz for the compact binary form).")
@click.option("--tokens", default=128, show_default=True, type=int,
              help="Tokens J recorded (a prefill batch of J / --context sequences).")
@click.option("--context", type=int,
              help="Tokens per sequence; must divide --tokens [default: min(--tokens, the "
                   "model's max_position_embeddings): 128 for wdmoe-tiny-moe].")
@click.option("--decode", is_flag=True,
              help="A decode step: keep only the last token of each sequence (J = --tokens / "
                   "--context tokens, each attending to its own sequence).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the tiny model's weights, the random token ids and the channels.")
@click.option("--text", type=click.Path(dir_okay=False),
              help="Text to run instead of random ids: the checkpoint's tokenizer if it has "
                   "one, else the file's bytes mod the vocabulary size.")
@click.option("--preset", default="wdmoe-sim", show_default=True,
              type=click.Choice(sorted(PRESETS)), help="Wireless system preset.")
@click.option("--channels-from", type=click.Path(dir_okay=False),
              help="Recorded channel gains (CSV: device,gain_down,gain_up[,layer]).")
@click.option("--devices", type=int, help="Devices U [default: the preset's rule].")
@click.option("--placement", type=click.Choice(["identity", "round-robin", "server"]),
              help="Expert placement rule [default: the preset's].")
@click.option("--sizes", default="preset", show_default=True,
              type=click.Choice(["preset", "model"]),
              help="Token bits/FLOPs (eqs. 4-5) from the preset's model (Mixtral 8x7B) or "
                   "from the recorded model's dims.")
@click.option("--similarity", is_flag=True,
              help="Also measure SiftMoE's similarity tables (expert output distances and "
                   "norms) and layer sensitivities on the recorded tokens (problem p4).")
def command(model_spec, output, tokens, context, decode, seed, text, preset, channels_from,
            devices, placement, sizes, similarity):
    """Record the router probabilities of every MoE layer of a torch model into an instance.

    \b
    Example:
      wdmoe-opt record --model tiny-mixtral --tokens 256 --seed 0 -o mixtral.json
      wdmoe-opt record --model wdmoe-tiny-moe --text held.txt --tokens 1024 -o tiny-moe.json
      wdmoe-opt record --model ~/ckpt/Mixtral-8x7B-v0.1 --text prompt.txt --tokens 512 \\
          -o mixtral-real.npz
      wdmoe-opt record --model tiny-mixtral --preset wdmoe-sift --similarity -o sift.json
    """
    require_torch()
    from ..torch import record_text

    overrides = {k: v for k, v in dict(devices=devices, placement=placement).items()
                 if v is not None}
    gains = None if channels_from is None else load_channel_csv(channels_from)
    instance = record_text(model_spec, tokens, text=text, context=context, decode=decode,
                           seed=seed, preset=preset, gains=gains, sizes=sizes,
                           recording={"channels": channels_from}, similarity=similarity,
                           **overrides)
    write_instance(instance, output)
    how = instance.provenance["recording"]["tokens"]
    click.echo(f"wrote {output}: {instance.name} ({instance.n_layers} MoE layers x "
               f"{instance.n_tokens} tokens x {instance.n_experts} experts, "
               f"Top-{instance.model.top_k}, {instance.n_devices} devices, tokens: {how})")
