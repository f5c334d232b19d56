"""S4, S4D and the selective SSM: parallel view == recurrent view, causality, kernels."""

import math

import pytest
import torch

from s4_strategies.ssm import (
    DSSLayer,
    S4DLayer,
    S4Layer,
    S5Layer,
    SelectiveSSM,
    discretize_bilinear,
    discretize_zoh,
    selective_scan_chunked,
    selective_scan_compiled,
    selective_scan_recompute,
    selective_scan_ref,
)
from s4_strategies.ssm.kernels import dplr_dense, full

H, N = 4, 8
LAYERS = {
    "s4": lambda **kw: S4Layer(H, N, **kw),
    "s4d": lambda **kw: S4DLayer(H, N, **kw),
    "s4d-bilinear": lambda **kw: S4DLayer(H, N, disc="bilinear", **kw),
    "mamba": lambda **kw: SelectiveSSM(d_model=H, d_state=N, scan="chunked", **kw),
    "mamba-seq": lambda **kw: SelectiveSSM(d_model=H, d_state=N, scan="sequential", **kw),
    "mamba-recompute": lambda **kw: SelectiveSSM(d_model=H, d_state=N, scan="recompute", **kw),
    "mamba-compiled": lambda **kw: SelectiveSSM(d_model=H, d_state=N, scan="compiled", **kw),
    "s5": lambda **kw: S5Layer(H, N, **kw),
    "s5-blocks-bilinear": lambda **kw: S5Layer(H, N, blocks=2, disc="bilinear", **kw),
    "dss": lambda **kw: DSSLayer(H, N, **kw),
    "dss-softmax": lambda **kw: DSSLayer(H, N, kernel="softmax", l_max=64, **kw),
}


def make(name, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return LAYERS[name](**kw).to(dtype)


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def states_rel(s1, s2):
    if isinstance(s1, tuple):
        return max(states_rel(a, b) for a, b in zip(s1, s2))
    return rel(s1, s2)


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_step_reproduces_forward_at_4096(name, dtype, tol):
    layer = make(name, dtype)
    u = torch.randn(1, 4096, H, dtype=dtype)
    with torch.no_grad():
        y, state = layer(u, return_state=True)
        y_rec, state_rec = layer.forward_recurrent(u)
    assert y.shape == u.shape
    assert rel(y_rec, y) < tol
    assert states_rel(state_rec, state) < tol * 10


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("L", [1, 7, 64])
def test_history_in_parallel_then_continue(name, L):
    """Consume a history in one parallel call, then go on in parallel or step by step."""
    layer = make(name, seed=1)
    u = torch.randn(2, 50 + L, H, dtype=torch.float64)
    with torch.no_grad():
        y_all, s_all = layer(u, return_state=True)
        y_a, s_a = layer(u[:, :50], return_state=True)
        y_b, s_b = layer(u[:, 50:], state=s_a, return_state=True)
        y_c, s_c = layer.forward_recurrent(u[:, 50:], s_a)
    assert rel(torch.cat([y_a, y_b], 1), y_all) < 1e-10
    assert rel(y_c, y_b) < 1e-10
    assert states_rel(s_b, s_all) < 1e-10 and states_rel(s_c, s_all) < 1e-10


@pytest.mark.parametrize("name", list(LAYERS))
def test_causal(name):
    layer = make(name, seed=2)
    u = torch.randn(2, 96, H, dtype=torch.float64)
    v = u.clone()
    t = 40
    v[:, t + 1:] = torch.randn_like(v[:, t + 1:]) * 10
    with torch.no_grad():
        y, y2 = layer(u), layer(v)
    assert (y[:, : t + 1] - y2[:, : t + 1]).abs().max() < 1e-12 * y.abs().max()
    assert (y[:, t + 1:] - y2[:, t + 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("name", list(LAYERS))
def test_bidirectional_sees_the_future_and_has_no_step(name):
    layer = make(name, seed=3, bidirectional=True)
    u = torch.randn(1, 32, H, dtype=torch.float64)
    v = u.clone()
    v[:, 20:] += 1
    with torch.no_grad():
        assert (layer(u)[:, :10] - layer(v)[:, :10]).abs().max() > 1e-6
    with pytest.raises(RuntimeError):
        layer.default_state(1)
    with pytest.raises(RuntimeError):
        layer(u, return_state=True)


def _dense_bilinear_s4(layer, L):
    """Kernel and matrices of an S4 layer from dense float64 linear algebra."""
    dt, Lam, P, B, C = layer.params()
    A = dplr_dense(Lam, P)  # (H, N, N)
    Ab, Bb = discretize_bilinear(A, full(B), dt, diagonal=False)
    x, K = Bb, []
    for _ in range(L):
        K.append((full(C[0]) * x).sum(-1).real)  # C Ab^l Bb
        x = (Ab @ x.unsqueeze(-1)).squeeze(-1)
    return Ab, torch.stack(K, -1)  # (H, N, N), (H, L)


@pytest.mark.parametrize("L", [1, 2, 5, 64, 101])
def test_s4_cauchy_woodbury_kernel_equals_dense_powers(L):
    layer = make("s4", seed=4)
    with torch.no_grad():
        Ab, K = _dense_bilinear_s4(layer, L)
        torch.testing.assert_close(layer.dense_Ab(), Ab, atol=1e-12, rtol=0)
        assert rel(layer.kernel(L)[0], K) < 1e-11
        # exact at any length: the first L taps do not depend on the length asked for
        assert rel(layer.kernel(3 * L)[0, :, :L], K) < 1e-11


def test_s4_random_init_kernel_and_stability():
    layer = make("s4", seed=5, init="random")
    with torch.no_grad():
        _, K = _dense_bilinear_s4(layer, 33)
        assert rel(layer.kernel(33)[0], K) < 1e-11
        assert torch.linalg.eigvals(layer.dense_Ab()).abs().max() < 1


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
@pytest.mark.parametrize("init", ["legs", "lin", "inv", "real", "random", "unstructured"])
def test_s4d_vandermonde_kernel_closed_form(disc, init):
    layer = make("s4d", seed=6, init=init, disc=disc)
    with torch.no_grad():
        dt = torch.exp(layer.log_dt).unsqueeze(-1)
        A = torch.complex(-torch.exp(layer.log_A_real), layer.A_imag)
        fn = discretize_zoh if disc == "zoh" else discretize_bilinear
        Ab, Bb = fn(A, torch.view_as_complex(layer.B), dt)
        C = torch.view_as_complex(layer.C)[0]
        K = torch.stack([2 * (C * Bb * Ab**k).sum(-1).real for k in range(20)], -1)
        assert rel(layer.kernel(20)[0], K) < 1e-12


@pytest.mark.parametrize("scan", [selective_scan_chunked, selective_scan_recompute,
                                  selective_scan_compiled])
@pytest.mark.parametrize("chunk", [None, 1, 3, 8, 64])
def test_selective_scans_equal_the_reference_values_and_gradients(scan, chunk):
    g = torch.Generator().manual_seed(7)
    B_, L, E, N_ = 2, 37, 3, 5

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    x = rnd(B_, L, E)
    dt = (torch.rand(B_, L, E, generator=g, dtype=torch.float64) * 2).requires_grad_()
    A = (-torch.rand(E, N_, generator=g, dtype=torch.float64) * 30).requires_grad_()
    Bm, Cm, D, h0 = rnd(B_, L, N_), rnd(B_, L, N_), rnd(E), rnd(B_, E, N_)
    gy = torch.randn(B_, L, E, generator=g, dtype=torch.float64)
    gh = torch.randn(B_, E, N_, generator=g, dtype=torch.float64)
    inputs = (x, dt, A, Bm, Cm, D, h0)
    results = []
    for fn in (selective_scan_ref, lambda *a: scan(*a, chunk_size=chunk)):
        y, h = fn(*inputs)
        grads = torch.autograd.grad((y * gy).sum() + (h * gh).sum(), inputs)
        results.append((y, h, grads))
    (y_ref, h_ref, g_ref), (y, h, grads) = results
    assert rel(y, y_ref) < 1e-12 and rel(h, h_ref) < 1e-12
    for a, b in zip(grads, g_ref):
        assert rel(a, b) < 1e-10


@pytest.mark.parametrize("name", list(LAYERS))
def test_gradients_reach_every_parameter(name):
    layer = make(name, torch.float32, seed=8)
    u = torch.randn(2, 40, H, requires_grad=True)
    layer(u).square().mean().backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert torch.isfinite(u.grad).all()


@pytest.mark.parametrize("name", list(LAYERS))
def test_fixed_dt_ablation(name):
    layer = make(name, seed=9, learn_dt=False)
    names = dict(layer.named_parameters())
    step = "log_step" if name.startswith("s5") else "log_dt"  # S5: one Δ per state
    assert step not in names and step in dict(layer.named_buffers())
    assert not any(k.startswith("dt_proj") for k in names)
    u = torch.randn(1, 30, H, dtype=torch.float64)
    with torch.no_grad():
        assert rel(layer.forward_recurrent(u)[0], layer(u)) < 1e-10


def test_s4_rejects_odd_state():
    with pytest.raises(ValueError):
        S4Layer(H, 7)


def test_float32_s4d_kernel_keeps_its_phase_over_long_sequences():
    """The phase l·Im(log Ab) reaches ~2e4 rad here (dt 1e-3, |Im A| ~ 1300, L 16384): formed
    in float32 it alone was off by ~1e-3 rad; formed in float64 and reduced mod 2π, what is
    left is the float32 FFT and exponentials."""
    torch.manual_seed(0)
    layer = S4DLayer(8, 64)  # float32
    with torch.no_grad():
        layer.log_dt.fill_(math.log(1e-3))
        exact = S4DLayer(8, 64)
        exact.load_state_dict(layer.state_dict())
        exact.double()
        L = 16384
        assert (layer.A_imag.abs().max() * 1e-3 * L).item() > 2e4
        err = rel(layer.kernel(L).double(), exact.kernel(L))
    assert err < 3e-5  # 2.2e-5; 4.2e-5 with the phase formed in float32
