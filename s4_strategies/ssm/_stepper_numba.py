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


# exp on float32 by Cody–Waite range reduction and a degree-6 Taylor polynomial, with 2^k
# built in the exponent bits: x = k ln 2 + r, |r| <= ln 2 / 2, exp(x) = 2^k p(r). No libm
# call, so the loop vectorises (math.exp in a loop does not without SVML); relative error
# within 4 float32 ulps of exp for x in [-87, 0] (tests/test_ssm_stepper.py).
_F32 = np.float32
_LOG2E, _LN2_HI, _LN2_LO = _F32(1.4426950408889634), _F32(0.693359375), _F32(-2.12194440e-4)
_P = tuple(_F32(1.0 / math.factorial(i)) for i in range(7))  # 1, 1, 1/2, ..., 1/720
_XMIN = _F32(-87.0)  # exp(-87) ~ 1.6e-38: the smallest normal float32 is 1.2e-38


@_jit
def exp_nonpos_f32(x, out, bits):
    """out[n] = exp(min(0, max(x[n], -87))) for float32 x (N,); bits: int32 scratch (N,)."""
    scale = bits.view(np.float32)
    for n in range(x.shape[0]):
        v = min(max(x[n], _XMIN), _F32(0.0))
        k = np.floor(v * _LOG2E + _F32(0.5))
        r = v - k * _LN2_HI - k * _LN2_LO  # |r| <= ln 2 / 2
        out[n] = _P[0] + r * (_P[1] + r * (_P[2] + r * (_P[3] + r * (_P[4] + r * (
            _P[5] + r * _P[6])))))
        bits[n] = (np.int32(k) + 127) << 23  # 2^k, k >= -126
    for n in range(x.shape[0]):
        out[n] *= scale[n]


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
def _conv_silu(convw, convb, conv, xz, xc):
    """xc = SiLU(causal depthwise conv of the last K inputs); conv (E, K-1) shifts by one."""
    E, K = convw.shape
    for c in range(E):
        acc = convb[c] + convw[c, K - 1] * xz[c]
        for k in range(K - 1):
            acc += convw[c, k] * conv[c, k]
        for k in range(K - 2):
            conv[c, k] = conv[c, k + 1]
        if K > 1:
            conv[c, K - 2] = xz[c]
        xc[c] = acc / (1.0 + math.exp(-acc))


@_jit
def mamba_model_step(x, We, be, norms, Win, bin_, convw, convb, Wx, Wdt, bdt, dt_fixed, A, Dm,
                     Wout, bout, Wo, bo, Wh, bh, conv, hs, out, eps):
    """One bar through the whole selective-SSM model (see :mod:`selective` for the maths).

    Win (nl, 2E, H), convw (nl, E, K), Wx (nl, R+2N, E), Wdt (nl, E, R), A (nl, E, N),
    conv (nl, E, K-1), hs (nl, E, N). R = 0 means a fixed dt (dt_fixed (nl, E))."""
    H = We.shape[0]
    nl, E, N = A.shape
    R = Wdt.shape[2]
    h = np.empty(H, dtype=x.dtype)
    z = np.empty(H, dtype=x.dtype)
    xz = np.empty(2 * E, dtype=x.dtype)
    xc = np.empty(E, dtype=x.dtype)
    dbc = np.empty(R + 2 * N, dtype=x.dtype)
    ye = np.empty(E, dtype=x.dtype)
    y = np.empty(H, dtype=x.dtype)
    zero = np.zeros(R + 2 * N, dtype=x.dtype)
    dA = np.empty(N, dtype=x.dtype)  # exp(Δ A) of one channel
    bits = np.empty(N, dtype=np.int32)
    f32 = x.itemsize == 4  # float32: the vectorised exp
    _linear(We, be, x, h)
    for li in range(nl):
        _layernorm(h, norms[li, 0], norms[li, 1], eps, z)
        _linear(Win[li], bin_[li], z, xz)
        _conv_silu(convw[li], convb[li], conv[li], xz, xc)
        _linear(Wx[li], zero, xc, dbc)
        for c in range(E):
            if R > 0:
                d = bdt[li, c]
                for r in range(R):
                    d += Wdt[li, c, r] * dbc[r]
                dt = d if d > 20.0 else math.log1p(math.exp(d))  # softplus
            else:
                dt = dt_fixed[li, c]
            for n in range(N):
                dA[n] = dt * A[li, c, n]  # <= 0
            if f32:
                exp_nonpos_f32(dA, dA, bits)
            else:
                for n in range(N):
                    dA[n] = math.exp(dA[n])
            acc = 0.0
            for n in range(N):
                v = dA[n] * hs[li, c, n] + dt * dbc[R + n] * xc[c]
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
