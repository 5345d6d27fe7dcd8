"""The one error type for bad input.

Every check at the door (instance files, CLI arguments, solver options) raises
:class:`InputError` naming the field and the offending value, so the CLI can
print one line and exit with code 2.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input. ``field`` names where (``system.devices[3].tx_power_w``).

    The message reads ``<field> <message>; got <value>``, e.g.
    ``system.devices[3].tx_power_w must be positive; got -1.0``.
    """

    def __init__(self, field: str, message: str, value: object = ...):
        self.field = field
        self.value = value
        shown = "" if value is ... else f"; got {_short(value)}"
        super().__init__(f"{field} {message}{shown}")


class BackendUnavailable(RuntimeError):
    """A solver's optional backend is missing; the message carries an install hint."""


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
