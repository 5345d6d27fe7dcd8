"""``wdmoe-opt evaluate``: next-token loss and top-1 accuracy of a torch MoE model on a text,
under the router's Top-K, a live selection policy, or a solved selection.

Needs the ``torch`` extra; torch is imported only when the command runs.
"""

from __future__ import annotations

import json

import click

from ..errors import InputError
from ..generate import PRESETS
from ._params import parse_assignments
from .record import require_torch


@click.command("evaluate")
@click.option("--model", "model_spec", required=True,
              metavar="wdmoe-tiny-moe|tiny-mixtral|tiny-qwen2-moe|tiny-olmoe|PATH",
              help="A shipped or tiny model by name, or a local transformers checkpoint.")
@click.option("--text", required=True, type=click.Path(dir_okay=False),
              help="Text to score: the checkpoint's tokenizer if it has one, else its bytes.")
@click.option("--tokens", type=int,
              help="Score the first N tokens [default: the whole text, in whole sequences].")
@click.option("--context", type=int,
              help="Tokens per independent sequence [default: min(N, the model's "
                   "max_position_embeddings); 128 for wdmoe-tiny-moe].")
@click.option("--solution", type=click.Path(dir_okay=False),
              help="Replay this solution's selection (wdmoe-solution/1 of an instance recorded "
                   "with the same --text, --tokens and --context).")
@click.option("--policy", metavar="METHOD",
              help="Run a selection method live on each layer's router weights: a P2 method "
                   "(topk, alg1, alg2, milp...) or a joint method in full (p1-floor/greedy with "
                   "--option min_retained_weight=0.9).")
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE",
              help="Option of the --policy method (repeatable), e.g. theta0=0.7.")
@click.option("--preset", default="wdmoe-sim", show_default=True,
              type=click.Choice(sorted(PRESETS)),
              help="Wireless system the --policy method optimizes for.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the --preset's channels (and of a tiny model's weights).")
@click.option("--batch", default=64, show_default=True, type=int,
              help="Sequences per forward pass (a live policy sees batch x context tokens "
                   "per layer).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(model_spec, text, tokens, context, solution, policy, options, preset, seed, batch,
            as_json):
    """Measure next-token cross-entropy (nats per token) and top-1 accuracy of a model on a
    text, under the router's Top-K (default), a live --policy, or a solved --solution.

    \b
    Example:
      wdmoe-opt evaluate --model wdmoe-tiny-moe --text held.txt --json
      wdmoe-opt evaluate --model wdmoe-tiny-moe --text held.txt --policy alg1 \\
          --option theta0=0.7 --json
      wdmoe-opt record --model wdmoe-tiny-moe --text held.txt --tokens 256 -o r.json
      wdmoe-opt solve r.json --selection alg1 --bandwidth exact -o s.json
      wdmoe-opt evaluate --model wdmoe-tiny-moe --text held.txt --tokens 256 --solution s.json
    """
    require_torch("evaluate")
    if solution is not None and policy is not None:
        raise InputError("--solution", "cannot be combined with --policy", solution)
    if options and policy is None:
        raise InputError("--option", "needs --policy", options[0])
    if batch < 1:
        raise InputError("--batch", "must be a positive integer", batch)
    from ..torch import evaluate_text

    result = evaluate_text(model_spec, text, tokens=tokens, context=context,
                           solution=solution, policy=policy,
                           options=parse_assignments(options, "--option"), preset=preset,
                           seed=seed, batch=batch)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{result['model']} on {result['text']} ({result['tokens']} predicted tokens, "
                   f"{result['selection']}): loss {result['loss_nats_per_token']:.4f} nats/token, "
                   f"top-1 {result['top1_accuracy']:.4f}, retained weight "
                   f"{result['retained_weight']:.4f}, {result['experts_per_token']:.3f} "
                   "experts/token")
