"""The compiled P3 kernel (``_p3kernel``) and the Lagrangian-dual certificate.

The dual function ``g(lam, nu) = sum_k min_{b >= 0} (sum_i lam[i, k] t[i, k](b) + nu b) - nu``
is recomputed here independently (numpy formulas for ``1/h``, a log-spaced grid
and a bounded Brent refinement per device), without ``certificate.py``,
``exact.py`` or the kernel, and the kernel must never exceed it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from tests.conftest import examples
from wdmoe_opt import BandwidthProblem, Selection, Status
from wdmoe_opt.bandwidth.certificate import dual_bound
from wdmoe_opt.bandwidth.exact import interior_point
from wdmoe_opt.bandwidth.structure import P3Data
from wdmoe_opt.generate import generate

_p3kernel = pytest.importorskip("wdmoe_opt.bandwidth._p3kernel",
                                reason="the compiled P3 kernel is not built")

TOL = 1e-9
#: Round-off allowance of a sum of doubles: 64 units in the last place, relative.
ULPS = 64 * np.finfo(np.float64).eps
#: How close the kernel's 1-D minima must come to the independent ones (relative): the
#: certification tolerance. The minima are compared, never the minimizers: the inner
#: functions are flat at their minimum, so a minimizer off by a relative ``d`` changes the
#: value by only ~``d**2 / 2`` and the minimizers of two correct searches may differ by
#: far more than the values (1.3e-5 at ``nu = 1e-12`` on one CPU).
VALUE_TOL = TOL
#: Where the independent search looks for an inner minimizer (log-spaced).
_GRID = np.geomspace(1e-16, 1e12, 2801)


# ----------------------------------------------------------------- helpers

def _data(seed=0, *, layers=4, tokens=64, devices=4, experts=None, fast_fading=False,
          mask=None, **overrides) -> P3Data:
    inst = generate("wdmoe-sim", seed=seed, layers=layers, tokens=tokens, devices=devices,
                    experts=experts or devices, fast_fading=fast_fading, **overrides)
    selection = Selection.topk(inst) if mask is None else Selection(mask(inst))
    return P3Data.from_problem(BandwidthProblem(inst, selection))


def _rotating_data(fast_fading: bool) -> P3Data:
    """3 layers x 3 devices where layer ``i`` loads devices ``i`` and ``i + 1`` only, so
    every device is loaded and has one idle (``kappa == 0``) layer."""
    def mask(inst):
        m = np.zeros(inst.gating_weights.shape, dtype=bool)
        for i in range(3):
            m[i, :, [i, (i + 1) % 3]] = True
        return m
    data = _data(5, layers=3, tokens=4, devices=3, fast_fading=fast_fading, mask=mask)
    assert data.n_loaded == 3 and ((data.kappa == 0).sum(axis=0) == 1).all()
    return data


@st.composite
def p3_data(draw) -> P3Data:
    """Small random instances: shared placement, fast fading, 1 MHz to 1 GHz."""
    devices = draw(st.integers(2, 6))
    shared = draw(st.booleans())
    return _data(draw(st.integers(0, 10_000)), layers=draw(st.integers(1, 5)),
                 tokens=draw(st.integers(1, 32)), devices=devices,
                 experts=draw(st.integers(2, 8)) if shared else devices,
                 placement="round-robin", fast_fading=draw(st.booleans()),
                 total_bandwidth_hz=10.0 ** draw(st.floats(6.0, 9.0)))


def _multipliers(rng, shape, sparse=False) -> np.ndarray:
    """Positive multipliers at an arbitrary scale; some zero (whole rows too) if sparse."""
    lam = rng.exponential(size=shape) * 10.0 ** rng.uniform(-6, 6)
    if sparse:
        lam[rng.random(shape) < 0.5] = 0.0
    return lam


def _normalized(lam) -> np.ndarray:
    """Rows scaled to sum 1 (uniform where a row is all zero), written independently."""
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    out = np.full(lam.shape, 1.0 / lam.shape[1])
    sums = lam.sum(axis=1)
    out[sums > 0] = lam[sums > 0] / sums[sums > 0, None]
    return out


def _per_layer(g, shape) -> np.ndarray:
    return np.broadcast_to(g, shape)


def _inner(data, lam_n, nu, k, b) -> np.ndarray:
    """``sum_i lam_n[i, k] t[i, k](b) + nu b`` at the points ``b`` [P], from scratch."""
    shape = data.kappa.shape
    gd, gu = _per_layer(data.g_down, shape)[:, k], _per_layer(data.g_up, shape)[:, k]
    on = data.kappa[:, k] > 0
    b = np.asarray(b, dtype=np.float64)[None, :]
    inv = 1.0 / (b * np.log1p(gd[on, None] / b)) + 1.0 / (b * np.log1p(gu[on, None] / b))
    comm = (lam_n[on, k] * data.kappa[on, k]) @ inv
    return comm + lam_n[:, k] @ data.pi[:, k] + nu * b[0]


def _inner_minimum(data, lam_n, nu, k) -> tuple[float, float]:
    """``(min, argmin)`` of :func:`_inner` over ``b >= 0``: grid, then Brent on ``log b``."""
    if not (lam_n[:, k] * data.kappa[:, k]).any():      # nu b + constant: minimum at 0
        return float(lam_n[:, k] @ data.pi[:, k]), 0.0
    values = _inner(data, lam_n, nu, k, _GRID)
    j = int(np.argmin(values))
    assert 0 < j < _GRID.size - 1, "the inner minimizer lies outside the search grid"
    y = np.log(_GRID)
    res = minimize_scalar(lambda v: _inner(data, lam_n, nu, k, [math.exp(v)])[0],
                          bounds=(y[j - 1], y[j + 1]), method="bounded",
                          options={"xatol": 1e-12})
    if res.fun < values[j]:
        return float(res.fun), math.exp(res.x)
    return float(values[j]), float(_GRID[j])


def _dual_function(data, lam, nu) -> tuple[float, np.ndarray, float]:
    """Independent ``g(lam, nu)`` (``nu > 0``), the argmins and the size of the summands
    (the scale of its round-off)."""
    lam_n = _normalized(lam)
    parts = [_inner_minimum(data, lam_n, nu, k) for k in range(data.n_loaded)]
    mins = np.array([p[0] for p in parts])
    return float(mins.sum() - nu), np.array([p[1] for p in parts]), float(abs(mins).sum() + nu)


def _limit_at_infinity(data, lam) -> float:
    """``g(lam, 0)``: every inner minimum is the limit ``b -> inf``, ``h(b) -> g``."""
    lam_n, shape = _normalized(lam), data.kappa.shape
    curve = 1.0 / _per_layer(data.g_down, shape) + 1.0 / _per_layer(data.g_up, shape)
    return float((lam_n * (data.kappa * curve + data.pi)).sum())


def _assert_minimizers(data, lam, nu, x):
    """Each kernel minimizer ``x[k]`` attains the independent inner minimum: its value is
    within ``VALUE_TOL`` of the minimum, relative to the ``b``-dependent part of the inner
    function (the constant ``lam @ pi`` could hide a poor minimizer), plus ``ULPS`` of the
    whole for the round-off of evaluating it."""
    lam_n = _normalized(lam)
    for k in range(data.n_loaded):
        minimum, argmin = _inner_minimum(data, lam_n, nu, k)
        if argmin == 0.0:     # nu b + constant: the minimizer is exactly 0, not flat
            assert x[k] == 0.0
            continue
        constant = float(lam_n[:, k] @ data.pi[:, k])
        value = float(_inner(data, lam_n, nu, k, [x[k]])[0])
        assert value <= minimum + VALUE_TOL * (minimum - constant) + ULPS * abs(minimum), (
            f"device {k}: value at the kernel's minimizer {x[k]:.6g} exceeds the minimum "
            f"(at {argmin:.6g}) by {value - minimum:.3e}")


def _assert_on_simplex(b):
    assert np.isfinite(b).all() and (b > 0).all()
    assert abs(b.sum() - 1.0) <= 1e-9, f"sum b - 1 = {b.sum() - 1.0:.3e}"


# --------------------------------------------- the certificate, independently

@settings(max_examples=examples(40), deadline=None)
@given(p3_data(), st.integers(0, 2**32 - 1), st.floats(-3.0, 2.0), st.booleans())
def test_certificate_matches_an_independent_dual_function(data, seed, log_nu, sparse):
    """Never above the independent ``g`` (beyond the round-off of its summands), and
    tight to 1e-9; the minimizers attain the inner minima; the start does not matter."""
    rng = np.random.default_rng(seed)
    lam, nu = _multipliers(rng, data.kappa.shape, sparse), 10.0 ** log_nu
    bound, x = dual_bound(data, lam, nu)
    expected, _, scale = _dual_function(data, lam, nu)
    assert bound <= expected + ULPS * scale
    assert bound >= expected - TOL * scale
    _assert_minimizers(data, lam, nu, x)
    other, _ = dual_bound(data, lam, nu, start=rng.dirichlet(np.ones(data.n_loaded)))
    assert abs(other - bound) <= TOL * scale


@pytest.mark.parametrize("fast_fading", [False, True], ids=["slow", "fast"])
@pytest.mark.parametrize("log_nu", [-3.0, 0.0, 2.0])
def test_devices_priced_only_on_idle_pairs_take_no_bandwidth(fast_fading, log_nu):
    """A device whose multipliers sit only where ``kappa == 0`` minimizes ``nu b`` at 0."""
    data = _rotating_data(fast_fading)
    lam = _multipliers(np.random.default_rng(7), data.kappa.shape)
    lam[:, 0] = np.where(data.kappa[:, 0] == 0, lam[:, 0], 0.0)
    nu = 10.0 ** log_nu
    bound, x = dual_bound(data, lam, nu)
    expected, argmins, scale = _dual_function(data, lam, nu)
    assert x[0] == 0.0 and argmins[0] == 0.0
    assert expected - TOL * scale <= bound <= expected + ULPS * scale
    _assert_minimizers(data, lam, nu, x)


# ------------------------------------------------------------ weak duality

@settings(max_examples=examples(30), deadline=None)
@given(p3_data(), st.integers(0, 2**32 - 1))
def test_weak_duality_on_random_points_of_the_simplex(data, seed):
    rng = np.random.default_rng(seed)
    points = rng.dirichlet(np.ones(data.n_loaded), size=20)
    objectives = data.objective(points)
    for sparse in (False, True):
        lam = _multipliers(rng, data.kappa.shape, sparse)
        for nu in (0.0, 10.0 ** rng.uniform(-3, 2)):
            bound, _ = dual_bound(data, lam, nu)
            assert np.isfinite(bound) and (bound <= objectives).all()


# ------------------------------------------------------------- nu = 0

@pytest.mark.parametrize("fast_fading", [False, True], ids=["slow", "fast"])
@pytest.mark.parametrize("seed", [0, 1])
def test_zero_price_is_the_limit_at_infinite_bandwidth(fast_fading, seed):
    """``nu = 0``: the limit ``b -> inf`` (a valid bound: never above it, within the
    tolerance below it), minimizers inf; a negative or NaN price is clipped to 0 by the
    wrapper; a tiny price comes close, ``g(nu) >= g(0) - nu``."""
    nu = 1e-12
    data = _data(seed, layers=3, tokens=32, devices=5, fast_fading=fast_fading)
    lam = _multipliers(np.random.default_rng(seed), data.kappa.shape, sparse=True)
    expected = _limit_at_infinity(data, lam)
    bound, x = dual_bound(data, lam, 0.0)
    assert expected * (1 - TOL) <= bound <= expected
    assert np.isposinf(x).all()
    for clipped in (-1.0, float("nan")):
        assert dual_bound(data, lam, clipped)[0] == bound
    near, x_near = dual_bound(data, lam, nu)     # minimizers ~1e6: the series branch
    assert (expected - nu) * (1 - TOL) <= near <= expected * (1 + 1e-4)
    independent, argmins, scale = _dual_function(data, lam, nu)
    assert independent - TOL * scale <= near <= independent + ULPS * scale
    _assert_minimizers(data, lam, nu, x_near)
    assert ((x_near > 1e3) | (argmins == 0)).all()


# --------------------------------------------------- the interior point

IPM_CASES = {
    # n_loaded > layers: the Newton system is reduced onto s (b eliminated)
    "slow-wide": dict(seed=1, layers=4, tokens=128, devices=12),
    "fast-wide": dict(seed=2, layers=6, tokens=256, devices=10, fast_fading=True),
    # n_loaded <= layers: reduced onto b (s eliminated)
    "slow-tall": dict(seed=3, layers=8, tokens=64, devices=3),
    "fast-tall": dict(seed=4, layers=8, tokens=128, devices=5, fast_fading=True),
    "fast-square": dict(seed=5, layers=6, tokens=96, devices=6, fast_fading=True),
}


@pytest.mark.parametrize("case", sorted(IPM_CASES))
def test_interior_point_certifies_its_optimum(case):
    params = IPM_CASES[case]
    data = _data(**params)
    assert (data.n_loaded > data.n_layers) == case.endswith("wide")
    res = interior_point(data, tol=TOL)
    assert res.status is Status.OPTIMAL
    assert res.bound <= res.objective <= res.bound * (1 + TOL)
    _assert_on_simplex(res.b)
    assert abs(data.objective(res.b) - res.objective) <= 1e-9 * res.objective
    again, _ = dual_bound(data, res.lam, res.nu, res.b)
    assert abs(again - res.bound) <= 1e-9 * abs(res.bound)
    expected, _, scale = _dual_function(data, res.lam, res.nu)
    assert expected - TOL * scale <= res.bound <= expected + ULPS * scale

    first = interior_point(data, tol=TOL, max_iter=1)
    assert first.status is Status.FEASIBLE and first.iterations == 1
    assert np.isfinite(first.bound) and first.bound <= res.objective
    _assert_on_simplex(first.b)
    assert abs(data.objective(first.b) - first.objective) <= 1e-9 * first.objective


@pytest.mark.parametrize("time_limit", [0.0, 1e-12])
@pytest.mark.parametrize("fast_fading", [False, True], ids=["slow", "fast"])
def test_time_limit_returns_a_certified_point(time_limit, fast_fading):
    data = _data(6, layers=5, tokens=128, devices=7, fast_fading=fast_fading)
    res = interior_point(data, tol=TOL, time_limit=time_limit)
    assert res.status is Status.TIME_LIMIT and res.iterations == 1
    assert np.isfinite(res.bound) and res.bound <= res.objective
    _assert_on_simplex(res.b)
    assert abs(data.objective(res.b) - res.objective) <= 1e-9 * res.objective


# Found while writing these tests: at a tolerance near the round-off margin (allowed:
# the option only needs tol > 0) the kernel stopped with FloatingPointError (seed 0:
# singular Newton system; seed 1: non-finite iterate), so solve(..., "exact",
# {"tol": 1e-13}) answered "error" at the uniform split, or drifted off the budget and
# reported "optimal" at sum b = 1.000346 with the bound above the objective (seed 2).
# The tolerance asked here, 1e-14, lies below the bound's own round-off margin (1e-13
# relative, taken off every bound), so no machine can certify it: the outcome does not
# depend on the CPU's round-off. Expected: "feasible" with a certified point.
@pytest.mark.parametrize("seed", [0, 1, 2, 6])
def test_unreachable_tolerance_ends_feasible_with_a_certified_point(seed):
    data = _data(seed, layers=6, tokens=128, devices=8, fast_fading=True)
    res = interior_point(data, tol=1e-14, max_iter=500)
    assert res.status is Status.FEASIBLE
    _assert_on_simplex(res.b)
    assert res.bound <= res.objective
    assert abs(data.objective(res.b) - res.objective) <= 1e-9 * res.objective


# ------------------------------------------------------- the raw kernel

def _dual_args(data):
    lam = _normalized(np.ones(data.kappa.shape))
    return [*data.kernel_arrays, lam, 1.0, data.uniform_point(), np.empty(data.n_loaded)]


def _ipm_args(data):
    return [*data.kernel_arrays, np.empty(data.n_loaded), np.empty(data.kappa.shape),
            TOL, 200, 60.0]


def _strided(a):
    """The same values, not contiguous."""
    return np.repeat(a, 2, axis=-1)[..., ::2]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_DUAL = {  # name: (argument index, replacement)
    "kappa float32": (0, lambda a: a.astype(np.float32)),
    "kappa fortran": (0, np.asfortranarray),
    "kappa strided": (0, _strided),
    "kappa short": (0, lambda a: a.ravel()[:-1]),
    "pi long": (1, lambda a: np.append(a, 1.0)),
    "g_down short": (2, lambda a: a.ravel()[:-1].copy()),
    "g_up one row, g_down per layer": (3, lambda a: a[:1].copy()),
    "lam float32": (4, lambda a: a.astype(np.float32)),
    "lam strided": (4, _strided),
    "lam short": (4, lambda a: a[:, :-1].copy()),
    "nu negative": (5, lambda v: -1.0),
    "nu nan": (5, lambda v: float("nan")),
    "start float32": (6, lambda a: a.astype(np.float32)),
    "start strided": (6, _strided),
    "start short": (6, lambda a: a[:-1].copy()),
    "x_out float32": (7, lambda a: a.astype(np.float32)),
    "x_out strided": (7, _strided),
    "x_out short": (7, lambda a: a[:-1].copy()),
    "x_out long": (7, lambda a: np.empty(a.size + 1)),
    "x_out empty": (7, lambda a: np.empty(0)),
    "x_out read-only": (7, _read_only),
}

BAD_IPM = {
    "kappa float32": (0, lambda a: a.astype(np.float32)),
    "kappa strided": (0, _strided),
    "g_up short": (3, lambda a: a.ravel()[:-1].copy()),
    "kappa one device": (0, lambda a: a[:, :1].copy()),
    "b_out float32": (4, lambda a: a.astype(np.float32)),
    "b_out short": (4, lambda a: a[:-1].copy()),
    "b_out strided": (4, _strided),
    "b_out read-only": (4, _read_only),
    "lam_out float32": (5, lambda a: a.astype(np.float32)),
    "lam_out strided": (5, _strided),
    "lam_out short": (5, lambda a: a[:-1].copy()),
    "lam_out read-only": (5, _read_only),
    "max_iter 0": (7, lambda v: 0),
}


def _reason(name: str) -> str:
    """The message expected for the bad argument ``name``."""
    for words, message in ((("read-only",), "read-only"),
                           (("strided", "fortran"), "contiguous"),
                           (("one row",), "shape differs"),
                           (("nu ", "max_iter", "one device"), "need at least")):
        if any(word in name for word in words):
            return message
    field = name.split()[0]
    if field == "kappa":  # kappa's shape gives the sizes every other buffer must have
        return r"kappa: expected a 2-D \[layers, devices\] contiguous float64 array"
    return field + r": expected \d+ contiguous float64 values"


@pytest.fixture(scope="module")
def kernel_data():
    """Fast fading (gains per layer), 3 layers x 4 devices."""
    return _data(8, layers=3, tokens=32, devices=4, fast_fading=True)


@pytest.mark.parametrize("name", sorted(BAD_DUAL))
def test_dual_bound_rejects_bad_buffers(kernel_data, name):
    args = _dual_args(kernel_data)
    good = _p3kernel.dual_bound(*args)
    index, bad = BAD_DUAL[name]
    args[index] = bad(args[index])
    with pytest.raises(ValueError, match=_reason(name)):
        _p3kernel.dual_bound(*args)
    assert _p3kernel.dual_bound(*_dual_args(kernel_data)) == good


@pytest.mark.parametrize("name", sorted(BAD_IPM))
def test_interior_point_rejects_bad_buffers(kernel_data, name):
    args = _ipm_args(kernel_data)
    index, bad = BAD_IPM[name]
    args[index] = bad(args[index])
    with pytest.raises(ValueError, match=_reason(name)):
        _p3kernel.interior_point(*args)
    assert _p3kernel.interior_point(*_ipm_args(kernel_data))[0] == 0


def test_read_only_inputs_are_accepted(kernel_data):
    args = _dual_args(kernel_data)
    good = _p3kernel.dual_bound(*args)
    frozen = [_read_only(a) for a in args[:5]] + [args[5], _read_only(args[6]), args[7]]
    assert _p3kernel.dual_bound(*frozen) == good


@pytest.mark.parametrize("start", [1e-12, 1e12, 1e300, 1e-300, 0.0, -1.0, np.nan, np.inf])
def test_the_bound_does_not_depend_on_the_start(kernel_data, start):
    """Any start of the 1-D searches gives the same bound (a positive one far from the
    minimizer included)."""
    lam = _multipliers(np.random.default_rng(3), kernel_data.kappa.shape)
    reference, _ = dual_bound(kernel_data, lam, 0.5)
    bound, x = dual_bound(kernel_data, lam, 0.5, np.full(kernel_data.n_loaded, start))
    assert abs(bound - reference) <= TOL * abs(reference)
    _assert_minimizers(kernel_data, lam, 0.5, x)
