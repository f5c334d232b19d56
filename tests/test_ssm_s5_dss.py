"""S5 and DSS against the papers' equations: the parallel scan, the HiPPO-N initialisation,
the dense system S5 diagonalises, the DSS-exp and DSS-softmax kernels, DSS = S4D.

The S5 reference implementation (lindermanlab/S5, JAX) is not on PyPI, so it cannot be
installed here; ``s5_paper`` below transcribes its equations (the reference's
``discretize_zoh``/``discretize_bilinear`` and ``apply_ssm``) in plain numpy instead.
"""

import math

import numpy as np
import pytest
import torch
from scipy.linalg import block_diag, expm

from s4_strategies.ssm import DSSLayer, S4DLayer, S5Layer, associative_scan, hippo_legs, s5_init
from s4_strategies.ssm.s5 import scan_ref

H = 3


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.abs(a - b).max() / np.abs(b).max()


def hippo_n(n):
    """The normal part of HiPPO-LegS: S = A + p pᵀ, p_i = sqrt(i + 1/2)."""
    A, _ = hippo_legs(n)
    p = np.sqrt(np.arange(n) + 0.5)
    return A + np.outer(p, p)


@pytest.mark.parametrize("L", [1, 2, 3, 5, 8, 37, 64, 101])
def test_associative_scan_equals_the_loop_values_and_gradients(L):
    g = torch.Generator().manual_seed(L)
    a = (torch.randn(4, dtype=torch.complex128, generator=g) * 0.6).requires_grad_()
    b = torch.randn(2, L, 4, dtype=torch.complex128, generator=g).requires_grad_()
    w = torch.randn(2, L, 4, dtype=torch.complex128, generator=g)
    out = []
    for fn in (scan_ref, associative_scan):
        x = fn(a, b)
        grads = torch.autograd.grad((x * w).real.sum(), (a, b), allow_unused=True)
        out.append((x, [torch.zeros_like(t) if d is None else d for t, d in zip((a, b), grads)]))
    (x_ref, g_ref), (x, grads) = out
    assert (x - x_ref).abs().max() < 1e-13
    for u, v in zip(grads, g_ref):
        assert (u - v).abs().max() < 1e-12


@pytest.mark.parametrize("P,J", [(8, 1), (16, 2), (24, 4)])
def test_s5_init_is_the_diagonalised_block_hippo_n(P, J):
    Lam, V = s5_init(P, J)
    S = block_diag(*[hippo_n(P // J)] * J)  # (P, P)
    # Λ: the eigenvalues of each block, one of each conjugate pair, real part -1/2
    ev = np.linalg.eigvals(hippo_n(P // J))
    by_freq = lambda z: z[np.argsort(z.imag)]  # noqa: E731
    assert np.allclose(by_freq(np.concatenate([Lam, Lam.conj()])), by_freq(np.tile(ev, J)),
                       atol=1e-9)
    assert np.allclose(Lam.real, -0.5)
    # V has orthonormal columns, is block-diagonal, and [V, V̄] diag(Λ, Λ̄) [V, V̄]^H = S
    assert np.allclose(V.conj().T @ V, np.eye(P // 2), atol=1e-12)
    assert np.allclose(V * (block_diag(*[np.ones((P // J, P // J // 2))] * J) == 0), 0)
    W = np.concatenate([V, V.conj()], 1)
    assert np.allclose(W @ np.diag(np.concatenate([Lam, Lam.conj()])) @ W.conj().T, S,
                       atol=1e-9)


def test_s5_layer_parameters_follow_the_reference_initialisation():
    P, H_ = 64, 32
    layer = S5Layer(H_, P, blocks=2, dt_min=1e-3, dt_max=1e-1,
                    generator=torch.Generator().manual_seed(0)).double()
    Lam, V = s5_init(P, 2)
    assert np.allclose(layer.Lambda_re.detach(), Lam.real)
    assert np.allclose(layer.Lambda_im.detach(), Lam.imag)
    Bt = torch.view_as_complex(layer.B).detach().numpy()  # (P/2, H)
    B = V @ Bt + (V @ Bt).conj()  # 2 Re(V B̃): the real B it came from (B̃ = V⁻¹ B)
    assert np.abs(B.imag).max() < 1e-12
    assert np.allclose(V.conj().T @ B.real, Bt)
    assert abs(B.real.std() * math.sqrt(P) - 1) < 0.1  # lecun normal: sd 1/sqrt(P)
    # truncated at ±2 of the unit normal before scaling (sd 0.8796 there), as jax's lecun_normal
    assert np.abs(B.real).max() <= 2 / (0.87962566103423978 * math.sqrt(P)) + 1e-12
    steps = layer.log_step.detach().numpy()
    assert steps.shape == (P // 2,) and (steps >= math.log(1e-3)).all() \
        and (steps <= math.log(1e-1)).all()


def test_s5_equals_the_dense_real_system_it_diagonalises():
    """With one Δ for every state, S5 is the ZOH of x' = A x + B u, y = C x + D u with A the
    block-diagonal HiPPO-N, B = 2 Re(V B̃), C = 2 Re(C̃ V^H): the diagonalisation is right."""
    P, J, L = 12, 2, 60
    layer = S5Layer(H, P, blocks=J, generator=torch.Generator().manual_seed(1)).double()
    Lam, V = s5_init(P, J)
    with torch.no_grad():
        layer.log_step.fill_(math.log(0.05))
        layer.Lambda_re.copy_(torch.as_tensor(Lam.real))  # unrounded by the float32 start
        layer.Lambda_im.copy_(torch.as_tensor(Lam.imag))
    Bt = torch.view_as_complex(layer.B).detach().numpy()
    Ct = torch.view_as_complex(layer.C).detach().numpy()[0]
    B = 2 * (V @ Bt).real  # (P, H)
    C = 2 * (Ct @ V.conj().T).real  # (H, P)
    A = block_diag(*[hippo_n(P // J)] * J)
    Ab = expm(0.05 * A)
    Bb = np.linalg.solve(A, (Ab - np.eye(P)) @ B)
    u = np.random.default_rng(1).normal(size=(L, H))
    x, ys = np.zeros(P), []
    for t in range(L):
        x = Ab @ x + Bb @ u[t]
        ys.append(C @ x + layer.D.detach().numpy() * u[t])
    with torch.no_grad():
        y = layer(torch.as_tensor(u[None]))[0].numpy()
    assert rel(y, np.array(ys)) < 1e-9


def s5_paper(layer, u, disc):
    """The S5 equations in numpy, from the layer's parameters by name: Λ (clipped at -1e-4),
    B̃ (P/2, H), C̃ (H, P/2), D, Δ = exp(log_step); ZOH or bilinear; the loop
    x_k = Λ̄ x_{k-1} + B̄ u_k; y = 2 Re(C̃ x) + D u."""
    p = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    Lam = np.minimum(p["Lambda_re"], -1e-4) + 1j * p["Lambda_im"]
    Bt = p["B"][..., 0] + 1j * p["B"][..., 1]
    Ct = p["C"][0, ..., 0] + 1j * p["C"][0, ..., 1]
    step = np.exp(p["log_step"])
    if disc == "zoh":
        Lb = np.exp(Lam * step)
        Bb = (1 / Lam * (Lb - 1))[:, None] * Bt
    else:
        BL = 1 / (1 - step / 2 * Lam)
        Lb = BL * (1 + step / 2 * Lam)
        Bb = (BL * step)[:, None] * Bt
    x, ys = np.zeros(len(Lam), complex), []
    for u_k in u:
        x = Lb * x + Bb @ u_k
        ys.append(2 * (Ct @ x).real + p["D"] * u_k)
    return np.array(ys)


@pytest.mark.parametrize("disc", ["zoh", "bilinear"])
def test_s5_equals_the_paper_equations_with_identical_parameters(disc):
    layer = S5Layer(H, 16, blocks=2, disc=disc,
                    generator=torch.Generator().manual_seed(2)).double()
    with torch.no_grad():
        layer.Lambda_re[0] = 0.3  # an unstable eigenvalue is clipped, as clip_eigs does
    u = np.random.default_rng(2).normal(size=(300, H))
    with torch.no_grad():
        y = layer(torch.as_tensor(u[None]))[0].numpy()
    assert rel(y, s5_paper(layer, u, disc)) < 1e-10


def dss_paper_kernel(layer, L):
    """Proposition 1 of the DSS paper in numpy: K = Re(w Λ^{-1} (e^{ΛΔ} - 1) exp(P)) (exp) or
    Re(w Λ^{-1} row-softmax_ε(P)) over k < l_max (softmax), P_{n,k} = λ_n k Δ."""
    p = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    if layer.kernel_kind == "exp":
        Lam = -np.exp(p["Lambda_log_neg_re"]) + 1j * p["Lambda_im"]
    else:
        Lam = np.minimum(p["Lambda_re"], -1e-4) + 1j * p["Lambda_im"]
    W = p["W"][0, ..., 0] + 1j * p["W"][0, ..., 1]  # (H, N)
    dt = np.exp(p["log_dt"])
    K = []
    for h in range(W.shape[0]):
        if layer.kernel_kind == "exp":
            Pm = np.outer(Lam * dt[h], np.arange(L))  # (N, L)
            S = np.exp(Pm) * (np.exp(Lam * dt[h]) - 1)[:, None]
        else:
            Pm = np.outer(Lam * dt[h], np.arange(layer.l_max))  # (N, l_max)
            Pm = Pm - Pm[np.arange(len(Lam)), np.argmax(Pm.real, 1)][:, None]
            E = np.exp(Pm)
            tot = E.sum(1, keepdims=True)
            S = (E * tot.conj() / (tot * tot.conj() + 1e-7))[:, :L]  # softmax_ε
        K.append(((W[h] / Lam) @ S).real)
    return np.array(K)  # (H, L)


@pytest.mark.parametrize("kernel", ["exp", "softmax"])
@pytest.mark.parametrize("init", ["legs", "lin", "real"])
def test_dss_kernels_equal_the_paper(kernel, init):
    layer = DSSLayer(H, 16, init=init, kernel=kernel, l_max=40,
                     generator=torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        K = layer.kernel(40)[0].numpy()
        assert rel(K, dss_paper_kernel(layer, 40)) < 1e-9
        assert rel(layer.kernel(25)[0].numpy(), K[:, :25]) < 1e-12  # no dependence on L


def test_dss_exp_is_s4d_with_w_equal_to_c_times_b():
    """DSS-exp with w = 2 C B is S4D-ZOH with the same Λ, Δ and D (both inits are HiPPO's
    skew eigenvalues): equal outputs and states, to float64 rounding."""
    s4d = S4DLayer(H, 16, generator=torch.Generator().manual_seed(4)).double()
    dss = DSSLayer(H, 16, generator=torch.Generator().manual_seed(5)).double()
    with torch.no_grad():
        assert torch.allclose(dss.Lambda_log_neg_re, s4d.log_A_real[0])
        assert torch.allclose(dss.Lambda_im, s4d.A_imag[0])
        W = 2 * torch.view_as_complex(s4d.C) * torch.view_as_complex(s4d.B)  # (1, H, N2)
        dss.W.copy_(torch.view_as_real(W))
        dss.log_dt.copy_(s4d.log_dt)
        dss.D.copy_(s4d.D)
        u = torch.randn(2, 200, H, dtype=torch.float64)
        (y1, x1), (y2, x2) = s4d(u, return_state=True), dss(u, return_state=True)
    assert rel(y2, y1) < 1e-12
    assert rel(x2 * torch.view_as_complex(s4d.B).detach(), x1) < 1e-12  # B folded into w


def test_dss_softmax_stays_stable_and_exp_is_stable_by_construction():
    soft = DSSLayer(H, 8, kernel="softmax", l_max=16).double()
    with torch.no_grad():
        soft.Lambda_re.fill_(0.5)  # the paper's softmax allows Re λ > 0; a stream cannot
        _, Ab, _, _ = soft.discrete()
    assert Ab.abs().max() < 1
    exp = DSSLayer(H, 8).double()
    with torch.no_grad():
        exp.Lambda_log_neg_re.fill_(-30.0)
        assert exp.discrete()[1].abs().max() < 1
