"""Path loss and Rayleigh fading (the paper's §V-A channel model)."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

#: -174 dBm/Hz, thermal noise at 290 K: the paper does not give N0.


def dbm_per_hz_to_w_per_hz(dbm: float) -> float:
    return 10 ** (dbm / 10) / 1000


def path_loss_db(distance_m, carrier_ghz: float, exponent: float = 2.0) -> np.ndarray:
    """``PL(d) = 32.4 + 20 log10(f_c / GHz) + 10 n log10(d / m)`` dB (``n = 2``: the
    paper's free-space formula; SiftMoE uses ``n = 4``)."""
    d = np.asarray(distance_m, dtype=np.float64)
    return 32.4 + 20 * np.log10(carrier_ghz) + 10 * exponent * np.log10(d)


def channel_gains(rng: np.random.Generator, distance_m, carrier_ghz: float,
                  layers: int | None = None, *, exponent: float = 2.0,
                  fading: str = "rayleigh", gamma_shape: float = 2.0) -> np.ndarray:
    """Power gains ``[U]`` (or ``[I, U]`` with ``layers``): Rayleigh as
    :func:`rayleigh_gains`, or the path loss times a Gamma variable of mean 1 and
    shape ``gamma_shape`` (SiftMoE's fading)."""
    if fading == "rayleigh":
        return rayleigh_gains(rng, distance_m, carrier_ghz, layers, exponent)
    if fading != "gamma":
        raise InputError("fading", "must be rayleigh or gamma", fading)
    mean = 10 ** (-path_loss_db(distance_m, carrier_ghz, exponent) / 10)
    shape = mean.shape if layers is None else (layers, *mean.shape)
    return mean * rng.gamma(gamma_shape, 1.0 / gamma_shape, size=shape)


def rayleigh_gains(rng: np.random.Generator, distance_m, carrier_ghz: float,
                   layers: int | None = None, exponent: float = 2.0) -> np.ndarray:
    """Power gains ``g = |h|^2`` with ``|h|`` Rayleigh of mean ``10^(-PL/20)``.

    One draw per device (``[U]``, slow fading) or, with ``layers``, one per layer
    and device (``[I, U]``, fast fading: the channel changes between layers).
    """
    mean_amp = 10 ** (-path_loss_db(distance_m, carrier_ghz, exponent) / 20)
    sigma = mean_amp / np.sqrt(np.pi / 2)   # Rayleigh mean = sigma sqrt(pi/2)
    shape = mean_amp.shape if layers is None else (layers, *mean_amp.shape)
    amp = rng.rayleigh(scale=np.broadcast_to(sigma, shape))
    return amp * amp
