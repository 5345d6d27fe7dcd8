"""The model layer (numpy only): instance, selection, latency, WLR, energy."""

from .instance import Instance, ModelSizes, System
from .latency import (
    comm_time_per_token_s,
    compute_time_per_token_s,
    device_loads,
    device_time_s,
    energy_j,
    expert_invocations,
    layer_latency_s,
    link_rates_bps,
    retained_weight,
    selected_weight,
    shannon_rate_bps,
    total_latency_s,
    uniform_bandwidth_hz,
    wlr,
)
from .selection import Selection, topk_mask

__all__ = [
    "Instance", "ModelSizes", "System", "Selection", "topk_mask",
    "comm_time_per_token_s", "compute_time_per_token_s", "device_loads", "device_time_s",
    "energy_j", "expert_invocations", "layer_latency_s", "link_rates_bps", "retained_weight",
    "selected_weight", "shannon_rate_bps", "total_latency_s", "uniform_bandwidth_hz", "wlr",
]
