"""Selective scans: h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,  y_t = C_t h_t + D x_t.

Shapes: x, dt (B, L, E); A (E, N); B, C (B, L, N); D (E,); h0 (B, E, N) or None
-> y (B, L, E), h_L (B, E, N). Three implementations of the same function:

    selective_scan_ref        the sequential reference, differentiated by autograd
    selective_scan_chunked    two-level chunked parallel scan (fewest Python steps)
    selective_scan_recompute  sequential, with a hand-written backward that stores the state
                              only every T steps and recomputes each chunk in reverse
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _chunk(L: int, chunk_size: int | None) -> int:
    return chunk_size or max(1, math.isqrt(max(L, 1) - 1) + 1)  # ~sqrt(L)


def selective_scan_ref(x, dt, A, B, C, D, h0=None):
    """Sequential reference (autograd keeps every state: O(B L E N) memory)."""
    h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1]) if h0 is None else h0  # (B, E, N)
    ys = []
    # unbind, not x[:, t]: the backward of L separate index ops would cost O(L^2)
    for x_t, dt_t, B_t, C_t in zip(x.unbind(1), dt.unbind(1), B.unbind(1), C.unbind(1)):
        a = torch.exp(dt_t.unsqueeze(-1) * A)  # (B, E, N)
        h = a * h + (dt_t * x_t).unsqueeze(-1) * B_t.unsqueeze(1)  # (B, E, N)
        ys.append((h * C_t.unsqueeze(1)).sum(-1) + D * x_t)  # (B, E)
    return torch.stack(ys, 1), h  # (B, L, E), (B, E, N)


def selective_scan_chunked(x, dt, A, B, C, D, h0=None, chunk_size: int | None = None):
    """Two-level chunked scan; same arguments and results as :func:`selective_scan_ref`.

    With T = chunk_size (default ~sqrt(L)) and L/T chunks:
      1. inside every chunk at once, from a zero state: h~_t = a_t h~_{t-1} + b_t and the
         running decay P_t = a_t P_{t-1}                        (T vectorised steps)
      2. across chunks: the state entering chunk c+1 is P_T h_in(c) + h~_T(c)  (L/T steps)
      3. every position at once: h_t = h~_t + P_t h_in(chunk)
    Work is O(L) like the sequential scan, with T + L/T Python steps instead of L, and every
    factor is a product of decays <= 1, so nothing can overflow."""
    Bsz, L, E = x.shape
    N = A.shape[1]
    T = _chunk(L, chunk_size)
    pad = (-L) % T
    a = torch.exp(dt.unsqueeze(-1) * A)  # (B, L, E, N)
    b = (dt * x).unsqueeze(-1) * B.unsqueeze(2)  # (B, L, E, N)
    if pad:  # identity steps (a = 1, b = 0) leave the state unchanged
        a = F.pad(a, (0, 0, 0, 0, 0, pad), value=1.0)
        b = F.pad(b, (0, 0, 0, 0, 0, pad))
    nc = (L + pad) // T
    a_t = a.view(Bsz, nc, T, E, N).unbind(2)  # T x (B, nc, E, N)  (unbind: O(L) backward)
    b_t = b.view(Bsz, nc, T, E, N).unbind(2)
    h, p, hl, P = b_t[0], a_t[0], [b_t[0]], [a_t[0]]
    for t in range(1, T):  # 1. all chunks in parallel
        h = a_t[t] * h + b_t[t]  # (B, nc, E, N)
        p = a_t[t] * p  # (B, nc, E, N)
        hl.append(h)
        P.append(p)
    h_end, P_end = hl[-1].unbind(1), P[-1].unbind(1)  # nc x (B, E, N)
    hl, P = torch.stack(hl, 2), torch.stack(P, 2)  # (B, nc, T, E, N)
    h = x.new_zeros(Bsz, E, N) if h0 is None else h0  # (B, E, N)
    h_in = []
    for c in range(nc):  # 2. carry the state across chunks
        h_in.append(h)
        h = P_end[c] * h + h_end[c]  # (B, E, N)
    hs = hl + P * torch.stack(h_in, 1).unsqueeze(2)  # (B, nc, T, E, N)  3. every position
    hs = hs.view(Bsz, nc * T, E, N)[:, :L]  # (B, L, E, N)
    return (hs * C.unsqueeze(2)).sum(-1) + D * x, h  # (B, L, E), (B, E, N)


class _RecomputeScan(torch.autograd.Function):
    """Backward of the scan by hand. With g = dLoss/dh_t (from y_t and from h_{t+1}):

        dC_t = g_y_t h_t              g += g_y_t C_t            (before the step back)
        d(dt_t A) = g h_{t-1} a_t     db_t = g,  b_t = dt_t x_t B_t
        g <- a_t g                    (the gradient reaching h_{t-1})
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, h0, T):
        Bsz, L, E = x.shape
        h = h0.clone()  # (B, E, N)
        y = torch.empty_like(x)  # (B, L, E)
        saved = []
        for t in range(L):  # no autograd inside: plain in-place updates
            if t % T == 0:
                saved.append(h.clone())  # the state entering each chunk
            h.mul_(torch.exp(dt[:, t, :, None] * A)).add_(
                (dt[:, t] * x[:, t]).unsqueeze(-1) * B[:, t, None, :])
            y[:, t] = (h * C[:, t, None, :]).sum(-1)
        ctx.save_for_backward(x, dt, A, B, C, D, torch.stack(saved, 1))
        ctx.T = T
        return y + D * x, h

    @staticmethod
    def backward(ctx, gy, g_hL):
        x, dt, A, B, C, D, saved = ctx.saved_tensors
        T, L = ctx.T, x.shape[1]
        g = torch.zeros_like(saved[:, 0]) if g_hL is None else g_hL.clone()  # (B, E, N)
        gx, gdt, gB, gC = gy * D, torch.empty_like(dt), torch.empty_like(B), torch.empty_like(C)
        gA = torch.zeros_like(A)
        for c in reversed(range(saved.shape[1])):
            t0, t1 = c * T, min(L, c * T + T)
            hs, As = [saved[:, c]], []  # recompute the chunk: h_{t0-1} .. h_{t1-1}
            for t in range(t0, t1):
                As.append(torch.exp(dt[:, t, :, None] * A))  # (B, E, N)
                hs.append(As[-1] * hs[-1] + (dt[:, t] * x[:, t]).unsqueeze(-1) * B[:, t, None, :])
            for t in reversed(range(t0, t1)):
                k = t - t0
                gC[:, t] = torch.einsum("ben,be->bn", hs[k + 1], gy[:, t])
                g = g + gy[:, t, :, None] * C[:, t, None, :]  # dLoss/dh_t  (B, E, N)
                g_dtA = g * hs[k] * As[k]  # (B, E, N)
                gb = (g * B[:, t, None, :]).sum(-1)  # (B, E)
                gdt[:, t] = (g_dtA * A).sum(-1) + gb * x[:, t]
                gx[:, t] += gb * dt[:, t]
                gA += torch.einsum("ben,be->en", g_dtA, dt[:, t])
                gB[:, t] = torch.einsum("ben,be->bn", g, dt[:, t] * x[:, t])
                g = g * As[k]  # dLoss/dh_{t-1}
        gD = (gy * x).sum((0, 1))
        return gx, gdt, gA, gB, gC, gD, g, None


def selective_scan_recompute(x, dt, A, B, C, D, h0=None, chunk_size: int | None = None):
    """Sequential scan storing the state only every T (~sqrt(L)) steps; the backward
    recomputes each chunk. Same arguments and results as :func:`selective_scan_ref`."""
    h0 = x.new_zeros(x.shape[0], x.shape[2], A.shape[1]) if h0 is None else h0
    return _RecomputeScan.apply(x, dt, A, B, C, D, h0, _chunk(x.shape[1], chunk_size))
