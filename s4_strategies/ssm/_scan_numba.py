"""numba kernels of the selective scan (forward and backward) for the CPU training path.

    h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,    y_t = C_t h_t + D x_t

Layouts (C-contiguous, float32 or float64; one compiled version per dtype):
    x, dt, y, gx, gdt (B, L, E);  A (E, N);  Bm, Cm (B, L, N);  D (E,);  h0, h, gh, gh0 (B, E, N)
    saved (B, nc, N, E)    the state entering each chunk of T steps, nc = ceil(L / T)
    gA_part (B, E, N), gB_part, gC_part (G, B, L, N)    partial sums, added by the caller

The work is B * G jobs: batch row b = j // G and the channel group g = j % G (channels
[g E / G, (g + 1) E / G)); a call runs jobs j0 .. j1 - 1 without the GIL, so the caller runs
shares of them on several threads. A job owns its rows of y, h, gx, gdt, gh0, gA_part,
gB_part[g, b] and gC_part[g, b]: no two jobs write the same memory, and the result does not
depend on how the jobs are shared out. Inside a job the state is held transposed, (N, E/G),
and the innermost loop runs over the channels: contiguous in x, dt, gy and the state, it
vectorises (float32: exp by range reduction and a polynomial, no libm call).

Memory: the forward stores only ``saved`` (B E N ceil(L / T) values, T ~ sqrt(L)); the
backward recomputes one chunk at a time into per-job buffers of (2T + 1) N E/G values, so
nothing grows with B E N L.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._stepper_numba import _F32, _LN2_HI, _LN2_LO, _LOG2E, _P, _XMIN, _jit


@intrinsic
def _bits_to_f32(typingctx, i):
    """The float32 whose bit pattern is the int32 ``i`` (a register bitcast)."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


# exp on float32 by the stepper's Cody–Waite range reduction and degree-6 Taylor polynomial
# (its constants; _stepper_numba.exp_nonpos_f32), as a scalar inlined into the loops: x =
# k ln 2 + r, |r| <= ln 2 / 2, exp(x) = 2^k p(r) with 2^k built in the exponent bits. No libm
# call, so the loops over the N states vectorise. Arguments are clamped to [-87, 88] (2^k
# stays a normal float32); the scans only meet dt A <= 0.
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _P
_XMAX = _F32(88.0)


def _exp(v):  # pragma: no cover - replaced by the overload inside jitted code
    return math.exp(v)


@overload(_exp, inline="always")
def _exp_impl(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        def exp_f32(v):
            v = min(max(v, _XMIN), _XMAX)
            k = np.floor(v * _LOG2E + _F32(0.5))
            r = v - k * _LN2_HI - k * _LN2_LO  # |r| <= ln 2 / 2
            p = _P0 + r * (_P1 + r * (_P2 + r * (_P3 + r * (_P4 + r * (_P5 + r * _P6)))))
            return p * _bits_to_f32(np.int32((np.int32(k) + 127) << 23))
        return exp_f32
    return lambda v: math.exp(v)  # float64: libm, exact to the last bit the tests need


@_jit
def scan_forward(j0, j1, x, dt, A, Bm, Cm, D, h0, T, G, y, h, saved):
    """Jobs j0 .. j1-1: y (B, L, E) and h = h_L (B, E, N) from h0; saved[:, c] = the state
    entering step c T, transposed (N, E)."""
    Bsz, L, E = x.shape
    N = A.shape[1]
    AT = np.ascontiguousarray(A.T)  # (N, E)
    for j in range(j0, j1):
        b, g = j // G, j % G
        e0, e1 = g * E // G, (g + 1) * E // G
        hT = np.ascontiguousarray(h0[b, e0:e1].T)  # (N, ne)
        du = np.empty(e1 - e0, x.dtype)
        acc = np.empty(e1 - e0, x.dtype)
        for t in range(L):
            if t % T == 0:
                saved[b, t // T, :, e0:e1] = hT
            dtr, xr = dt[b, t, e0:e1], x[b, t, e0:e1]  # (ne,)
            for i in range(e1 - e0):
                du[i] = dtr[i] * xr[i]
                acc[i] = D[e0 + i] * xr[i]
            for n in range(N):  # h = exp(dt A) h + dt x B;  y = C h + D x
                Bn, Cn, An, hn = Bm[b, t, n], Cm[b, t, n], AT[n, e0:e1], hT[n]
                for i in range(e1 - e0):
                    hv = _exp(dtr[i] * An[i]) * hn[i] + du[i] * Bn
                    hn[i] = hv
                    acc[i] += Cn * hv
            y[b, t, e0:e1] = acc
        h[b, e0:e1] = hT.T


@_jit
def scan_backward(j0, j1, x, dt, A, Bm, Cm, D, saved, gy, gh, T, G,
                  gx, gdt, gA_part, gB_part, gC_part, gh0):
    """Jobs j0 .. j1-1: gradients from gy (B, L, E) and gh = dLoss/dh_L (B, E, N), chunk by
    chunk from the last (the equations are in scan._CompiledScan)."""
    Bsz, L, E = x.shape
    N = A.shape[1]
    nc = saved.shape[1]
    zero = np.zeros(1, x.dtype)[0]  # a 0 of x's dtype (0.0 would widen float32 sums)
    AT = np.ascontiguousarray(A.T)  # (N, E)
    for j in range(j0, j1):
        b, g = j // G, j % G
        e0, e1 = g * E // G, (g + 1) * E // G
        ne = e1 - e0
        hs = np.empty((T + 1, N, ne), x.dtype)  # h_{t0-1} .. h_{t1-1} of one chunk
        As = np.empty((T, N, ne), x.dtype)  # a_t = exp(dt_t A) of the chunk
        gs = np.ascontiguousarray(gh[b, e0:e1].T)  # dLoss/dh, carried backwards  (N, ne)
        gA = np.zeros((N, ne), x.dtype)
        du, sA, sB = np.empty(ne, x.dtype), np.empty(ne, x.dtype), np.empty(ne, x.dtype)
        for c in range(nc - 1, -1, -1):
            t0 = c * T
            t1 = min(L, t0 + T)
            hs[0] = saved[b, c, :, e0:e1]
            for t in range(t0, t1):  # recompute the chunk
                k = t - t0
                dtr, xr = dt[b, t, e0:e1], x[b, t, e0:e1]
                for n in range(N):
                    Bn, An, ak, hp, hq = Bm[b, t, n], AT[n, e0:e1], As[k, n], hs[k, n], hs[k + 1, n]
                    for i in range(ne):
                        a = _exp(dtr[i] * An[i])
                        ak[i] = a
                        hq[i] = a * hp[i] + dtr[i] * xr[i] * Bn
            for t in range(t1 - 1, t0 - 1, -1):  # and walk it backwards
                k = t - t0
                dtr, xr, gyr = dt[b, t, e0:e1], x[b, t, e0:e1], gy[b, t, e0:e1]
                for i in range(ne):
                    du[i] = dtr[i] * xr[i]
                    sA[i] = zero
                    sB[i] = zero
                for n in range(N):
                    Bn, Cn, An = Bm[b, t, n], Cm[b, t, n], AT[n, e0:e1]
                    ak, hp, hq, gn, gAn = As[k, n], hs[k, n], hs[k + 1, n], gs[n], gA[n]
                    gc = zero
                    gb = zero
                    for i in range(ne):
                        gc += gyr[i] * hq[i]  # dC_t = sum_e gy_t h_t
                        gv = gn[i] + gyr[i] * Cn  # dLoss/dh_t
                        gda = gv * hp[i] * ak[i]  # dLoss/d(dt_t A)
                        sA[i] += gda * An[i]
                        gAn[i] += gda * dtr[i]
                        sB[i] += gv * Bn
                        gb += gv * du[i]  # dB_t = sum_e g dt_t x_t
                        gn[i] = gv * ak[i]  # dLoss/dh_{t-1}
                    gC_part[g, b, t, n] = gc
                    gB_part[g, b, t, n] = gb
                for i in range(ne):
                    gdt[b, t, e0 + i] = sA[i] + sB[i] * xr[i]
                    gx[b, t, e0 + i] = sB[i] * dtr[i] + gyr[i] * D[e0 + i]
        gh0[b, e0:e1] = gs.T
        gA_part[b, e0:e1] = gA.T
