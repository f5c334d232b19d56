"""HiPPO, NPLR, S4D initialisations and discretisation against closed forms."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.signal
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from s4_strategies.ssm import (
    discretize_bilinear,
    discretize_zoh,
    dplr_init,
    hippo_legs,
    init_log_dt,
    nplr_legs,
    s4d_init,
)


def test_hippo_legs_entries():
    A, B = hippo_legs(4)
    s = np.sqrt
    expected = -np.array([
        [1, 0, 0, 0],
        [s(3) * s(1), 2, 0, 0],
        [s(5) * s(1), s(5) * s(3), 3, 0],
        [s(7) * s(1), s(7) * s(3), s(7) * s(5), 4],
    ])
    np.testing.assert_allclose(A, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(B, s([1, 3, 5, 7]), rtol=0, atol=1e-15)
    assert A.dtype == np.float64


@pytest.mark.parametrize("N", [2, 8, 64])
def test_nplr_reconstructs_hippo(N):
    A, B = hippo_legs(N)
    Lam, P, Bt, V = nplr_legs(N)
    assert Lam.shape == P.shape == Bt.shape == (N // 2,) and V.shape == (N, N // 2)
    np.testing.assert_allclose(Lam.real, -0.5, atol=1e-12)
    assert np.all(Lam.imag > 0)
    Vf = np.concatenate([V, V.conj()], 1)  # (N, N) full, unitary
    np.testing.assert_allclose(Vf.conj().T @ Vf, np.eye(N), atol=1e-10)
    Lf, Pf = np.concatenate([Lam, Lam.conj()]), np.concatenate([P, P.conj()])
    A_rec = Vf @ (np.diag(Lf) - np.outer(Pf, Pf.conj())) @ Vf.conj().T  # rank-1 correction
    np.testing.assert_allclose(A_rec.imag, 0, atol=1e-9 * N)
    np.testing.assert_allclose(A_rec.real, A, atol=1e-10 * N * N)
    np.testing.assert_allclose(Vf @ np.concatenate([Bt, Bt.conj()]), B, atol=1e-10 * N)
    # P is V^H p with p_n = sqrt(n + 1/2)
    np.testing.assert_allclose(Vf @ Pf, np.sqrt(np.arange(N) + 0.5), atol=1e-10 * N)


def test_hippo_is_not_stably_diagonalisable():
    """Why S4 keeps the DPLR recurrence (no float64 diagonalisation of HiPPO-LegS)."""
    conds = [np.linalg.cond(np.linalg.eig(hippo_legs(N)[0])[1]) for N in (8, 16, 32)]
    assert conds[0] < conds[1] < conds[2] and conds[2] > 1e12


def test_s4d_inits_closed_forms():
    N = 16
    n = np.arange(N // 2)
    np.testing.assert_allclose(s4d_init("lin", N), -0.5 + 1j * np.pi * n)
    np.testing.assert_allclose(s4d_init("inv", N), -0.5 + 1j * N / np.pi * (N / (2 * n + 1) - 1))
    np.testing.assert_allclose(s4d_init("real", N), -(n + 1.0))
    np.testing.assert_allclose(s4d_init("legs", N), nplr_legs(N)[0])
    r = s4d_init("random", N, torch.Generator().manual_seed(0))
    assert r.shape == (N // 2,) and np.all(r.real < 0)
    # unstructured: a Ginibre spectrum, stable, with no frequency grid and no HiPPO spread
    u = s4d_init("unstructured", 64, torch.Generator().manual_seed(0))
    assert u.shape == (32,) and np.all(u.real <= -0.05 + 1e-12)
    assert np.isclose(u.real.max(), -0.05) and np.abs(u.imag).max() < 2.0
    assert u.real.min() > -3.0 and len(np.unique(np.round(u.imag, 6))) > 16
    with pytest.raises(ValueError):
        s4d_init("nope", N)
    with pytest.raises(ValueError):
        s4d_init("lin", 7)
    Lam, P, B = dplr_init("random", N, torch.Generator().manual_seed(0))
    assert np.all(Lam.real < 0) and P.shape == B.shape == (N // 2,)


def test_log_dt_init_is_log_uniform():
    log_dt = init_log_dt(20000, 1e-3, 1e-1, torch.Generator().manual_seed(0))
    assert log_dt.min() >= math.log(1e-3) and log_dt.max() <= math.log(1e-1)
    assert abs(log_dt.mean().item() - math.log(1e-2)) < 0.02  # midpoint in log space
    assert abs((log_dt < math.log(1e-2)).double().mean().item() - 0.5) < 0.02


def f64(v):
    return torch.tensor(v, dtype=torch.complex128 if isinstance(v, complex) else torch.float64)


def _dense_case(seed=0, N=4):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(N, N)) - 2 * np.eye(N)
    B = rng.normal(size=N)
    return A, B


def test_zoh_and_bilinear_dense_match_scipy():
    A, B = _dense_case()
    dt = 0.07
    for method, fn in (("zoh", discretize_zoh), ("bilinear", discretize_bilinear)):
        Ad, Bd, *_ = scipy.signal.cont2discrete((A, B[:, None], np.eye(4), 0), dt, method=method)
        Ab, Bb = fn(torch.tensor(A), torch.tensor(B), f64(dt), diagonal=False)
        np.testing.assert_allclose(Ab.numpy(), Ad, rtol=0, atol=1e-10)
        np.testing.assert_allclose(Bb.numpy(), Bd[:, 0], rtol=0, atol=1e-10)
    Ab, _ = discretize_zoh(torch.tensor(A), torch.tensor(B), f64(dt), diagonal=False)
    np.testing.assert_allclose(Ab.numpy(), scipy.linalg.expm(dt * A), rtol=0, atol=1e-10)


def test_diagonal_rules_equal_dense_rules_on_a_diagonal_matrix():
    a = torch.tensor([-0.5 + 3j, -1.0 + 0j, -0.1 - 7j], dtype=torch.complex128)
    b = torch.tensor([1.0 + 1j, 2.0, -0.5j], dtype=torch.complex128)
    dt = torch.tensor(0.03, dtype=torch.float64)
    for fn in (discretize_zoh, discretize_bilinear):
        Ab, Bb = fn(a, b, dt)
        Ad, Bd = fn(torch.diag(a), b, dt, diagonal=False)
        torch.testing.assert_close(Ab, torch.diagonal(Ad), atol=1e-14, rtol=0)
        torch.testing.assert_close(Bb, Bd, atol=1e-14, rtol=0)


def test_zoh_is_exact_for_piecewise_constant_input():
    """x' = a x + b u with u constant over the step: x(dt) = e^{a dt} x0 + (e^{a dt}-1)/a b u."""
    a, b, x0, u, dt = -0.7 + 2j, 1.5 - 0.5j, 0.3 + 0.1j, 0.8, 0.25
    sol = scipy.integrate.solve_ivp(lambda t, y: [a * y[0] + b * u], (0, dt), [x0],
                                    rtol=1e-12, atol=1e-14)
    Ab, Bb = discretize_zoh(f64(a).reshape(1), f64(b).reshape(1), f64(dt))
    assert abs(Ab.item() * x0 + Bb.item() * u - sol.y[0, -1]) < 1e-10


@settings(max_examples=40, deadline=None)
@given(re=st.floats(-5, -1e-3), im=st.floats(-50, 50), dt1=st.floats(1e-4, 0.5),
       dt2=st.floats(1e-4, 0.5))
def test_zoh_semigroup_and_bilinear_stability(re, im, dt1, dt2):
    a = torch.tensor([complex(re, im)], dtype=torch.complex128)
    one = torch.ones(1, dtype=torch.complex128)
    A1, _ = discretize_zoh(a, one, f64(dt1))
    A2, _ = discretize_zoh(a, one, f64(dt2))
    A12, _ = discretize_zoh(a, one, f64(dt1 + dt2))
    assert abs((A1 * A2 - A12).item()) < 1e-12
    Ab, _ = discretize_bilinear(a, one, f64(dt1))
    assert abs(Ab.item()) < 1  # Cayley transform of a stable pole stays in the unit disc
