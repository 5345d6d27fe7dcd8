"""The model layer (numpy only): instance, selection, latency, WLR, energy."""

from .instance import Instance, ModelSizes, System, topk_mask, topk_order
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
from .selection import Selection

__all__ = [
    "Instance", "ModelSizes", "System", "Selection", "topk_mask", "topk_order",
    "comm_time_per_token_s", "compute_time_per_token_s", "device_loads", "device_time_s",
    "energy_j", "expert_invocations", "layer_latency_s", "link_rates_bps", "retained_weight",
    "selected_weight", "shannon_rate_bps", "total_latency_s", "uniform_bandwidth_hz", "wlr",
]
