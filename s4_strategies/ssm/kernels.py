"""Convolution kernels of linear state space models, written as the equations they implement.

Half-mode convention (see :mod:`hippo`): a state of size N is N/2 complex modes ``x``; the
full state is ``(x, conj x)``. Vectors named ``X``, ``Y`` below are half-mode vectors of a
conjugate-symmetric full vector.
"""

from __future__ import annotations

import math

import torch


def fft_conv(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Causal linear convolution ``y_t = sum_{j<=t} K_{t-j} u_j``, by FFT with 2L padding
    (no wrap-around, so nothing after t reaches t). u (..., H, L), K (H, L) -> (..., H, L)."""
    L = u.shape[-1]
    n = 2 * L
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)  # (..., H, 2L)
    return y[..., :L]


def vandermonde_powers(log_Ab: torch.Tensor, L: int, dtype: torch.dtype | None = None):
    """``Ab^l = exp(l log Ab)`` for l = 0..L-1, each power computed directly (not by
    repeated multiplication). log_Ab (H, N2) -> (H, N2, L) of ``dtype`` (default: log_Ab's).

    The phase ``l Im(log Ab)`` of HiPPO modes grows with the length (2e4 rad at dt 1e-3 over
    16384 bars); float32's relative rounding (6e-8) of that product alone is ~1e-3 rad. So
    the exponent is formed in float64 and the phase reduced mod 2π before the exponential
    (the float32 kernel's error at that length halves; ``tests/test_ssm_layers.py``):

        Ab^l = exp(l Re log Ab) · exp(i ((l Im log Ab) mod 2π))
    """
    dtype = dtype or log_Ab.dtype
    ell = torch.arange(L, device=log_Ab.device, dtype=torch.float64)  # (L,)
    log_Ab = log_Ab.to(torch.complex128).unsqueeze(-1)  # (H, N2, 1)
    mag = torch.exp(log_Ab.real * ell)  # (H, N2, L)
    phase = torch.remainder(log_Ab.imag * ell, 2 * math.pi)  # (H, N2, L)
    return torch.polar(mag, phase).to(dtype)  # (H, N2, L)


def vandermonde_kernel(C: torch.Tensor, Bb: torch.Tensor, powers: torch.Tensor) -> torch.Tensor:
    """``K_l = C Ab^l Bb = 2 Re sum_n C_n Bb_n Ab_n^l``. C (c, H, N2), Bb (H, N2),
    powers (H, N2, L) -> (c, H, L)."""
    return 2 * torch.einsum("chn,hnl->chl", C * Bb, powers).real  # (c, H, L)


# --- diagonal plus low rank (S4) ------------------------------------------------------------
#
# Bilinear discretisation of A = Lambda - P P^H with step dt, evaluated at a point omega of
# the unit circle:
#
#     (I - Ab omega)^{-1} Bb = M(omega)^{-1} 2B,    M = a I - b A,
#     a = (2/dt)(1 - omega),  b = 1 + omega.
#
# This is the S4 generating function 2/(1+omega) (g - A)^{-1} B, g = (2/dt)(1-omega)/(1+omega),
# multiplied through by (1 + omega) so that it stays finite at omega = -1. With
# D = a - b Lambda (diagonal), Woodbury gives the rank-1 correction
#
#     X M^{-1} Y = k(X, Y) - b k(X, P) k(P*, Y) / (1 + b k(P*, P)),
#
# where k(X, Y) = sum over the full state of X_n Y_n / D_n is a Cauchy sum; the conjugate
# half of the state contributes conj(X_n Y_n) / (a - b conj(Lambda_n)).


def unit_roots(L: int, n_freq: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """``omega_k = exp(-2 pi i k / L)`` for k = 0..n_freq-1, (n_freq,) complex."""
    k = torch.arange(n_freq, device=device, dtype=dtype)
    return torch.polar(torch.ones_like(k), -2 * math.pi * k / L)


class CauchyWoodbury:
    """The resolvent ``M(omega)^{-1}`` of a DPLR matrix at a set of frequencies.

    dt (H,), Lam (H, N2), P (H, N2), omega (K,)."""

    def __init__(self, dt: torch.Tensor, Lam: torch.Tensor, P: torch.Tensor, omega: torch.Tensor):
        self.P = P  # (H, N2)
        self.a = (2 / dt).unsqueeze(-1) * (1 - omega)  # (H, K)
        self.b = 1 + omega  # (K,)
        a, b = self.a.unsqueeze(1), self.b  # (H, 1, K), (K,)
        # 1 / (a - b Lam), fused (addcmul + in-place reciprocal: 3x faster than a - b * Lam)
        self.r1 = torch.addcmul(a, b, Lam.unsqueeze(-1), value=-1).reciprocal_()  # (H, N2, K)
        self.r2 = torch.addcmul(a, b, Lam.conj().unsqueeze(-1), value=-1).reciprocal_()  # conj half
        self.kQP = self.cauchy(P.conj() * P)  # (H, K)

    def cauchy(self, V: torch.Tensor) -> torch.Tensor:
        """``k = sum_n V_n / D_n`` over the full state. V (..., H, N2) -> (..., H, K)."""
        return (torch.einsum("...hn,hnk->...hk", V, self.r1)
                + torch.einsum("...hn,hnk->...hk", V.conj(), self.r2))

    def _gain(self, kQY: torch.Tensor) -> torch.Tensor:
        return self.b * kQY / (1 + self.b * self.kQP)  # (..., H, K)

    def bilinear_form(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """``X M^{-1} Y``. X (c, H, N2) rows, Y (m, H, N2) columns -> (c, m, H, K)."""
        kXY = self.cauchy(X.unsqueeze(1) * Y.unsqueeze(0))  # (c, m, H, K)
        kXP = self.cauchy(X * self.P).unsqueeze(1)  # (c, 1, H, K)
        kQY = self.cauchy(self.P.conj() * Y)  # (m, H, K)
        return kXY - kXP * self._gain(kQY)  # (c, m, H, K)

    def resolvent_first_half(self, Y: torch.Tensor) -> torch.Tensor:
        """First-half entries of ``M^{-1} Y``. Y (H, N2) -> (H, N2, K)."""
        gain = self._gain(self.cauchy(self.P.conj() * Y))  # (H, K)
        return self.r1 * (Y.unsqueeze(-1) - self.P.unsqueeze(-1) * gain.unsqueeze(1))  # (H, N2, K)


def dplr_dense(Lam: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """Full-state ``A = diag(Lam, conj Lam) - [P; conj P][P; conj P]^H``. -> (H, N, N)."""
    Lf = torch.cat([Lam, Lam.conj()], -1)  # (H, N)
    Pf = torch.cat([P, P.conj()], -1)  # (H, N)
    return torch.diag_embed(Lf) - Pf.unsqueeze(-1) * Pf.conj().unsqueeze(-2)  # (H, N, N)


def dplr_real(Lam: torch.Tensor, P: torch.Tensor) -> torch.Tensor:
    """The same A on the real coordinates ``[Re x; Im x]`` of the half-mode state (4x cheaper
    dense algebra than the complex full state). On half modes A acts as
    ``x -> M1 x + M2 conj(x)``, ``M1 = diag(Lam) - P P^H``, ``M2 = -P P^T``. -> (H, N, N) real."""
    M1 = torch.diag_embed(Lam) - P.unsqueeze(-1) * P.conj().unsqueeze(-2)  # (H, N2, N2)
    M2 = -P.unsqueeze(-1) * P.unsqueeze(-2)  # (H, N2, N2)
    top = torch.cat([M1.real + M2.real, M2.imag - M1.imag], -1)  # (H, N2, N)
    bottom = torch.cat([M1.imag + M2.imag, M1.real - M2.real], -1)  # (H, N2, N)
    return torch.cat([top, bottom], -2)  # (H, N, N)


def to_real(x: torch.Tensor) -> torch.Tensor:
    """Half-mode complex (..., N2) -> real coordinates (..., N)."""
    return torch.cat([x.real, x.imag], -1)


def from_real(r: torch.Tensor) -> torch.Tensor:
    """Real coordinates (..., N) -> half-mode complex (..., N2)."""
    N2 = r.shape[-1] // 2
    return torch.complex(r[..., :N2], r[..., N2:])


def full(x: torch.Tensor) -> torch.Tensor:
    """Half-mode vector (..., N2) -> full conjugate-symmetric vector (..., N)."""
    return torch.cat([x, x.conj()], -1)
