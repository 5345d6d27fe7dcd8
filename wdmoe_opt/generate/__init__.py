"""Instance generators: presets, synthetic gating, channels, imports of recorded data."""

from .channels import path_loss_db, rayleigh_gains
from .gating import softmax, synthetic_gating_weights
from .presets import PRESETS, Scenario, generate, make_placement, scenario

__all__ = ["PRESETS", "Scenario", "generate", "make_placement", "scenario", "path_loss_db",
           "rayleigh_gains", "softmax", "synthetic_gating_weights"]
from .importers import load_channel_csv, load_gating_array  # noqa: E402

__all__ += ["load_channel_csv", "load_gating_array"]
