"""numba kernels for the per-bar stepper: one fused call per bar for the whole model.

Complex numbers are split into real/imaginary planes so that each inner loop runs over
the N2 modes of one channel on contiguous memory and vectorises. Layouts (nl layers,
H = d_model, N2 = d_state / 2, I = input_dim, O = number of outputs):

    We (H, I), be (H)               embedding
    norms (nl + 1, 2, H)            LayerNorm weight / bias per block, then the final norm
    ssm (nl, P, H, N2)              coefficient planes (see _diag_ssm / _dplr_ssm)
    D (nl, 2, H)                    skip term D, and sigma for the DPLR output correction
    Wo (nl, 2H, H), bo (nl, 2H)     the GLU output projection
    Wh (O, H), bh (O)               all heads stacked
    state (nl, 2, H, N2)            real and imaginary planes of the half-mode state
                                    (S4: of w, with the scalar state s (nl, H) beside it)

S5 (one state of P2 = d_state / 2 modes shared by the channels):
    lam (nl, 2, P2)                 Λ̄
    Bm (nl, 2, P2, H)               B̄
    Cm (nl, 2, H, P2)               2 C̃
    state (nl, 2, P2)
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


def _jit(fn):
    """njit with an on-disk cache when a writable cache location exists (numba refuses
    ``cache=True`` otherwise; then it compiles on first use in each process)."""
    try:
        return njit(cache=True, fastmath=True, nogil=True)(fn)
    except RuntimeError:  # pragma: no cover
        return njit(fastmath=True, nogil=True)(fn)


_SQRT1_2 = 1.0 / math.sqrt(2.0)


@_jit
def _layernorm(h, g, b, eps, out):
    n = h.shape[0]
    mu = 0.0
    for i in range(n):
        mu += h[i]
    mu /= n
    var = 0.0
    for i in range(n):
        d = h[i] - mu
        var += d * d
    inv = 1.0 / math.sqrt(var / n + eps)
    for i in range(n):
        out[i] = (h[i] - mu) * inv * g[i] + b[i]


@_jit
def _linear(W, b, x, out):
    for j in range(W.shape[0]):
        acc = b[j]
        for i in range(W.shape[1]):
            acc += W[j, i] * x[i]
        out[j] = acc


@_jit
def _gelu(v):
    return 0.5 * v * (1.0 + math.erf(v * _SQRT1_2))


@_jit
def _glu_residual(Wo, bo, y, h):
    """h += a * sigmoid(b), (a, b) = Wo y + bo split in halves."""
    H = h.shape[0]
    for j in range(H):
        a = bo[j]
        c = bo[H + j]
        for i in range(y.shape[0]):
            a += Wo[j, i] * y[i]
            c += Wo[H + j, i] * y[i]
        h[j] += a / (1.0 + math.exp(-c))


@_jit
def _diag_ssm(S, xr, xi, z, D, y):
    """Planes of S: 0,1 Ab; 2,3 Bb; 4,5 2C.  x = Ab x + Bb u;  y = Re(2C x) + D u."""
    for c in range(S.shape[1]):
        u = z[c]
        acc = 0.0
        for n in range(S.shape[2]):
            ar, ai = S[0, c, n], S[1, c, n]
            r = ar * xr[c, n] - ai * xi[c, n] + S[2, c, n] * u
            i = ar * xi[c, n] + ai * xr[c, n] + S[3, c, n] * u
            xr[c, n] = r
            xi[c, n] = i
            acc += S[4, c, n] * r - S[5, c, n] * i
        y[c] = _gelu(acc + D[0, c] * u)


@_jit
def _dplr_ssm(S, wr, wi, s, z, D, y):
    """DPLR step in one pass over the modes, on the state (w, s) with x = w - rho s and
    s = 2 Re(conj(P) w) (see stepper.py). Planes of S: 0,1 alpha; 2,3 mu; 4,5 gamma;
    6,7 conj(P); 8,9 2C. D[0] = D, D[1] = sigma = Re sum 2C rho.

        w' = alpha w - mu s + gamma u;  s' = 2 Re(conj(P) w');  y = Re(2C w') - sigma s' + D u"""
    for c in range(S.shape[1]):
        u = z[c]
        sc = s[c]
        acc_s = 0.0
        acc_y = 0.0
        for n in range(S.shape[2]):
            ar, ai = S[0, c, n], S[1, c, n]
            r = ar * wr[c, n] - ai * wi[c, n] - S[2, c, n] * sc + S[4, c, n] * u
            i = ar * wi[c, n] + ai * wr[c, n] - S[3, c, n] * sc + S[5, c, n] * u
            wr[c, n] = r
            wi[c, n] = i
            acc_s += S[6, c, n] * r - S[7, c, n] * i
            acc_y += S[8, c, n] * r - S[9, c, n] * i
        s[c] = 2.0 * acc_s
        y[c] = _gelu(acc_y - D[1, c] * s[c] + D[0, c] * u)


@_jit
def _mimo_ssm(lam, Bm, Cm, D, xr, xi, z, y):
    """S5: x = Λ̄ x + B̄ u over the P2 shared modes, then y = Re(2C̃ x) + D u per channel."""
    H = z.shape[0]
    for n in range(lam.shape[1]):
        br = 0.0
        bi = 0.0
        for c in range(H):
            br += Bm[0, n, c] * z[c]
            bi += Bm[1, n, c] * z[c]
        ar, ai = lam[0, n], lam[1, n]
        r = ar * xr[n] - ai * xi[n] + br
        i = ar * xi[n] + ai * xr[n] + bi
        xr[n] = r
        xi[n] = i
    for c in range(H):
        acc = D[0, c] * z[c]
        for n in range(lam.shape[1]):
            acc += Cm[0, c, n] * xr[n] - Cm[1, c, n] * xi[n]
        y[c] = _gelu(acc)


@_jit
def s5_model_step(x, We, be, norms, lam, Bm, Cm, D, Wo, bo, Wh, bh, state, out, eps):
    """One bar through the whole S5 model; writes the state (nl, 2, P2) in place and ``out``."""
    H = We.shape[0]
    nl = lam.shape[0]
    h = np.empty(H, dtype=x.dtype)
    z = np.empty(H, dtype=x.dtype)
    y = np.empty(H, dtype=x.dtype)
    _linear(We, be, x, h)
    for li in range(nl):
        _layernorm(h, norms[li, 0], norms[li, 1], eps, z)
        _mimo_ssm(lam[li], Bm[li], Cm[li], D[li], state[li, 0], state[li, 1], z, y)
        _glu_residual(Wo[li], bo[li], y, h)
    _layernorm(h, norms[nl, 0], norms[nl, 1], eps, z)
    _linear(Wh, bh, z, out)


@_jit
def s5_model_run(X, We, be, norms, lam, Bm, Cm, D, Wo, bo, Wh, bh, state, OUT, eps):
    """``s5_model_step`` over every row of X (L, I); outputs in OUT (L, O)."""
    for t in range(X.shape[0]):
        s5_model_step(X[t], We, be, norms, lam, Bm, Cm, D, Wo, bo, Wh, bh, state, OUT[t], eps)


@_jit
def s4_model_step(x, We, be, norms, ssm, D, Wo, bo, Wh, bh, state, s, out, eps, dplr):
    """One bar through the whole S4 / S4D model. Writes the state in place and ``out``.
    D (nl, 2, H); s (nl, H) the DPLR scalar state (unused for the diagonal)."""
    H = We.shape[0]
    nl = ssm.shape[0]
    h = np.empty(H, dtype=x.dtype)
    z = np.empty(H, dtype=x.dtype)
    y = np.empty(H, dtype=x.dtype)
    _linear(We, be, x, h)
    for li in range(nl):
        _layernorm(h, norms[li, 0], norms[li, 1], eps, z)
        if dplr:
            _dplr_ssm(ssm[li], state[li, 0], state[li, 1], s[li], z, D[li], y)
        else:
            _diag_ssm(ssm[li], state[li, 0], state[li, 1], z, D[li], y)
        _glu_residual(Wo[li], bo[li], y, h)
    _layernorm(h, norms[nl, 0], norms[nl, 1], eps, z)
    _linear(Wh, bh, z, out)


@_jit
def mamba_model_step(x, We, be, norms, Win, bin_, convw, convb, Wx, Wdt, bdt, dt_fixed, A, Dm,
                     Wout, bout, Wo, bo, Wh, bh, conv, hs, out, eps):
    """One bar through the whole selective-SSM model (see :mod:`selective` for the maths).

    Win (nl, 2E, H), convw (nl, E, K), Wx (nl, R+2N, E), Wdt (nl, E, R), A (nl, E, N),
    conv (nl, E, K-1), hs (nl, E, N). R = 0 means a fixed dt (dt_fixed (nl, E))."""
    H = We.shape[0]
    nl, E, N = A.shape
    R = Wdt.shape[2]
    K = convw.shape[2]
    h = np.empty(H, dtype=x.dtype)
    z = np.empty(H, dtype=x.dtype)
    xz = np.empty(2 * E, dtype=x.dtype)
    xc = np.empty(E, dtype=x.dtype)
    dbc = np.empty(R + 2 * N, dtype=x.dtype)
    ye = np.empty(E, dtype=x.dtype)
    y = np.empty(H, dtype=x.dtype)
    _linear(We, be, x, h)
    for li in range(nl):
        _layernorm(h, norms[li, 0], norms[li, 1], eps, z)
        _linear(Win[li], bin_[li], z, xz)
        for c in range(E):  # causal depthwise conv over the last K inputs, then SiLU
            acc = convb[li, c] + convw[li, c, K - 1] * xz[c]
            for k in range(K - 1):
                acc += convw[li, c, k] * conv[li, c, k]
            for k in range(K - 2):
                conv[li, c, k] = conv[li, c, k + 1]
            if K > 1:
                conv[li, c, K - 2] = xz[c]
            xc[c] = acc / (1.0 + math.exp(-acc))
        _linear(Wx[li], np.zeros(R + 2 * N, dtype=x.dtype), xc, dbc)
        for c in range(E):
            if R > 0:
                d = bdt[li, c]
                for r in range(R):
                    d += Wdt[li, c, r] * dbc[r]
                dt = d if d > 20.0 else math.log1p(math.exp(d))  # softplus
            else:
                dt = dt_fixed[li, c]
            acc = 0.0
            for n in range(N):
                v = math.exp(dt * A[li, c, n]) * hs[li, c, n] + dt * dbc[R + n] * xc[c]
                hs[li, c, n] = v
                acc += v * dbc[R + N + n]
            g = xz[E + c]
            ye[c] = (acc + Dm[li, c] * xc[c]) * g / (1.0 + math.exp(-g))
        _linear(Wout[li], bout[li], ye, y)
        for c in range(H):
            y[c] = _gelu(y[c])
        _glu_residual(Wo[li], bo[li], y, h)
    _layernorm(h, norms[nl, 0], norms[nl, 1], eps, z)
    _linear(Wh, bh, z, out)


@_jit
def s4_model_run(X, We, be, norms, ssm, D, Wo, bo, Wh, bh, state, s, OUT, eps, dplr):
    """``s4_model_step`` over every row of X (L, I) in compiled code; outputs in OUT (L, O)."""
    for t in range(X.shape[0]):
        s4_model_step(X[t], We, be, norms, ssm, D, Wo, bo, Wh, bh, state, s, OUT[t], eps, dplr)


@_jit
def mamba_model_run(X, We, be, norms, Win, bin_, convw, convb, Wx, Wdt, bdt, dt_fixed, A, Dm,
                    Wout, bout, Wo, bo, Wh, bh, conv, hs, OUT, eps):
    """``mamba_model_step`` over every row of X (L, I); outputs in OUT (L, O)."""
    for t in range(X.shape[0]):
        mamba_model_step(X[t], We, be, norms, Win, bin_, convw, convb, Wx, Wdt, bdt, dt_fixed,
                         A, Dm, Wout, bout, Wo, bo, Wh, bh, conv, hs, OUT[t], eps)
