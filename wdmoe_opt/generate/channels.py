"""Path loss and Rayleigh fading (the paper's §V-A channel model)."""

from __future__ import annotations

import numpy as np

#: -174 dBm/Hz, thermal noise at 290 K: the paper does not give N0.


def dbm_per_hz_to_w_per_hz(dbm: float) -> float:
    return 10 ** (dbm / 10) / 1000


def path_loss_db(distance_m, carrier_ghz: float) -> np.ndarray:
    """``PL(d) = 32.4 + 20 log10(f_c / GHz) + 20 log10(d / m)`` dB."""
    d = np.asarray(distance_m, dtype=np.float64)
    return 32.4 + 20 * np.log10(carrier_ghz) + 20 * np.log10(d)


def rayleigh_gains(rng: np.random.Generator, distance_m, carrier_ghz: float,
                   layers: int | None = None) -> np.ndarray:
    """Power gains ``g = |h|^2`` with ``|h|`` Rayleigh of mean ``10^(-PL/20)``.

    One draw per device (``[U]``, slow fading) or, with ``layers``, one per layer
    and device (``[I, U]``, fast fading: the channel changes between layers).
    """
    mean_amp = 10 ** (-path_loss_db(distance_m, carrier_ghz) / 20)
    sigma = mean_amp / np.sqrt(np.pi / 2)   # Rayleigh mean = sigma sqrt(pi/2)
    shape = mean_amp.shape if layers is None else (layers, *mean_amp.shape)
    amp = rng.rayleigh(scale=np.broadcast_to(sigma, shape))
    return amp * amp
