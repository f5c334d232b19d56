"""Selective scans: h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,  y_t = C_t h_t + D x_t.

Shapes: x, dt (B, L, E); A (E, N); B, C (B, L, N); D (E,); h0 (B, E, N) or None
-> y (B, L, E), h_L (B, E, N). Four implementations of the same function:

    selective_scan_ref        the sequential reference, differentiated by autograd
    selective_scan_chunked    two-level chunked parallel scan (fewest Python steps)
    selective_scan_recompute  sequential, with a hand-written backward that stores the state
                              only every T steps and recomputes each chunk in reverse
    selective_scan_compiled   the recompute scheme as numba kernels (CPU; forward and
                              backward compiled, parallel over batch rows and channel groups)

Memory kept for the backward: ref O(B L E N) (every state), chunked O(B L E N) (a, b and the
partial states), recompute and compiled O(B E N L / T) with T ~ sqrt(L).

The compiled scan runs its jobs on Python threads (the kernels release the GIL), not numba's
``prange``: numba's OpenMP layer brings a second OpenMP runtime beside torch's, and its
spinning idle threads competed with torch's; inside the training step that made the
backward ~3x slower than the same kernel called alone, and it doubled the compile time.
Compilation (~15 s for float32 and float64 together) is cached on disk after the first use.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

try:  # numba is a dependency; without it the compiled scan is unavailable (auto skips it)
    from . import _scan_numba as _nb
except ImportError:  # pragma: no cover
    _nb = None
COMPILED_SCAN = _nb is not None  # whether selective_scan_compiled can run here


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


class _CompiledScan(torch.autograd.Function):
    """The scan as numba kernels (:mod:`._scan_numba`), forward and backward, on the CPU.

    Forward: the sequential loop, storing only the state entering every T-th step,
    saved (B, ceil(L/T), N, E). Backward, chunk by chunk from the last: recompute
    h_{t0-1} .. h_{t1-1} and a_t = exp(dt_t A) from the stored state, then for
    t = t1-1 .. t0, with g = dLoss/dh_t arriving from h_{t+1}:

        g      += gy_t C_t                           (B, E, N)   now all of dLoss/dh_t
        dC_t    = sum_e gy_t h_t                     (B, N)
        dA     += sum_b dt_t g h_{t-1} a_t           (E, N)      d(dt_t A) = g h_{t-1} a_t
        ddt_t   = sum_n (A g h_{t-1} a_t + g B_t x_t)            (B, E)
        dB_t    = sum_e g dt_t x_t                   (B, N)
        dx_t    = dt_t sum_n g B_t + D gy_t          (B, E)
        g      <- a_t g                              (the gradient reaching h_{t-1})

    then dD = sum_{b,t} gy x and dh0 = the last g. No (B, L, E, N) tensor is formed: memory
    is the B E N ceil(L/T) stored states plus (2T + 1) N E/G per running job. The work is
    B * G jobs (batch row, channel group) shared out over torch.get_num_threads() threads.
    """

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, h0, T):
        x, dt, A, B, C, D, h0 = (v.detach().contiguous() for v in (x, dt, A, B, C, D, h0))
        Bsz, L, E = x.shape
        threads, G = _threads_and_groups(Bsz, E)
        y, h = torch.empty_like(x), torch.empty_like(h0)  # (B, L, E), (B, E, N)
        saved = x.new_empty(Bsz, -(-L // T), A.shape[1], E)  # (B, nc, N, E)
        args = [v.numpy() for v in (x, dt, A, B, C, D, h0)] + [T, G] + [
            v.numpy() for v in (y, h, saved)]
        _run_jobs(_nb.scan_forward, Bsz * G, threads, args)
        ctx.save_for_backward(x, dt, A, B, C, D, saved)
        ctx.T = T
        return y, h

    @staticmethod
    def backward(ctx, gy, gh):
        x, dt, A, B, C, D, saved = ctx.saved_tensors
        Bsz, L, E = x.shape
        gy = torch.zeros_like(x) if gy is None else gy.contiguous()  # (B, L, E)
        gh = x.new_zeros(Bsz, E, A.shape[1]) if gh is None else gh.contiguous()  # (B, E, N)
        threads, G = _threads_and_groups(Bsz, E)
        gx, gdt, gh0 = torch.empty_like(x), torch.empty_like(x), torch.empty_like(gh)
        gA = x.new_empty(Bsz, *A.shape)  # (B, E, N), summed over b below
        gB, gC = x.new_empty(G, *B.shape), x.new_empty(G, *C.shape)  # (G, B, L, N)
        args = [v.numpy() for v in (x, dt, A, B, C, D, saved, gy, gh)] + [ctx.T, G] + [
            v.numpy() for v in (gx, gdt, gA, gB, gC, gh0)]
        _run_jobs(_nb.scan_backward, Bsz * G, threads, args)
        gD = (gy * x).reshape(-1, E).sum(0)  # (E,)
        return gx, gdt, gA.sum(0), gB.sum(0), gC.sum(0), gD, gh0, None


_POOL: dict = {}  # (process id, workers) -> ThreadPoolExecutor; a forked child makes its own
_POOL_LOCK = threading.Lock()


def _threads_and_groups(batch: int, channels: int) -> tuple[int, int]:
    """torch's thread count, and the channel groups per batch row that share batch * groups
    jobs evenly over those threads: threads / gcd(batch, threads)."""
    threads = max(1, torch.get_num_threads())
    return threads, min(channels, threads // math.gcd(batch, threads))


def _run_jobs(kernel, jobs: int, threads: int, args) -> None:
    """kernel(j0, j1, *args) over jobs 0 .. jobs-1, in contiguous shares on up to ``threads``
    threads (the kernels release the GIL); this thread runs the first share."""
    threads = min(threads, jobs)
    cuts = [k * jobs // threads for k in range(threads + 1)]
    if threads == 1:
        kernel(0, jobs, *args)
        return
    key = (os.getpid(), threads - 1)
    with _POOL_LOCK:
        pool = _POOL.get(key) or _POOL.setdefault(key, ThreadPoolExecutor(threads - 1))
    futures = [pool.submit(kernel, cuts[k], cuts[k + 1], *args) for k in range(1, threads)]
    kernel(cuts[0], cuts[1], *args)
    for f in futures:
        f.result()


def selective_scan_compiled(x, dt, A, B, C, D, h0=None, chunk_size: int | None = None):
    """The scan as compiled (numba) CPU kernels with a hand-written backward that stores the
    state every T (~sqrt(L)) steps. Same arguments and results as :func:`selective_scan_ref`;
    CPU tensors, computed in x's dtype (float32 or float64)."""
    if _nb is None:  # pragma: no cover
        raise ImportError("selective_scan_compiled needs numba installed (pip install numba)")
    if x.device.type != "cpu":
        raise ValueError(f"selective_scan_compiled runs on the CPU, got x on {x.device}")
    if x.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"selective_scan_compiled takes float32 or float64, got {x.dtype}")
    h0 = x.new_zeros(x.shape[0], x.shape[2], A.shape[1]) if h0 is None else h0
    args = [v.to(x.dtype) for v in (x, dt, A, B, C, D, h0)]
    return _CompiledScan.apply(*args, _chunk(x.shape[1], chunk_size))
