"""``wdmoe-opt``: a thin command line over the library (parse, call, print, store).

Bad input prints one line ``error: <field> <message>; got <value>`` on stderr
and exits with code 2; no traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from .._version import __version__
from ..errors import BackendUnavailable, InputError

#: Command name -> the module of ``wdmoe_opt.cli`` defining its click ``command``.
_COMMANDS = {"generate": "generate", "info": "info", "solve": "solve", "check": "check",
             "ablation": "ablation", "record": "record", "evaluate": "evaluate",
             "bench": "bench", "report": "report", "simulate": "simulate"}


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs (or help lists it), so
    ``wdmoe-opt solve`` does not pay for the harness's pandas."""

    def list_commands(self, ctx):
        return sorted(_COMMANDS)

    def get_command(self, ctx, name):
        if name not in _COMMANDS:
            return None
        return importlib.import_module(f"{__name__}.{_COMMANDS[name]}").command


@click.group(cls=_LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="wdmoe-opt")
def cli():
    """Optimization toolkit for wireless distributed MoE inference (the WDMoE paper's P1-P3).

    \b
    Example:
      wdmoe-opt generate wdmoe-sim --seed 0 -o sim.json
      wdmoe-opt solve sim.json --selection alg1 --bandwidth exact -o sol.json
      wdmoe-opt check sim.json sol.json
    """


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the process exit code."""
    try:
        rv = cli.main(args=argv, prog_name="wdmoe-opt", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except (InputError, BackendUnavailable) as exc:
        click.echo(f"error: {exc}", err=True)
        code = 2
    except click.ClickException as exc:      # usage errors too: one line, not the usage
        click.echo(f"error: {exc.format_message()}", err=True)
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        code = 130
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = 130
    if argv is None:
        sys.exit(code)
    return code
