"""S4D: a diagonal state space layer with a Vandermonde kernel and FFT convolution.

Per channel h (H = d_model channels, N2 = d_state / 2 complex modes):

    x_k = Ab x_{k-1} + Bb u_k,   y_k = 2 Re(C x_k) + D u_k
    (Ab, Bb): hippo.discretize_zoh (exact for the diagonal) or hippo.discretize_bilinear
    kernel:   K_l = 2 Re sum_n C_n Bb_n Ab_n^l,   y = K * u + D u   (causal FFT convolution)

Continuing from a state x0 adds ``2 Re sum_n C_n Ab_n^{t+1} x0_n`` to y_t, and the state
after L steps is ``Ab^L x0 + sum_j Ab^{L-1-j} Bb u_j``. Every power is ``exp(l log Ab)``
for the actual length, so ``forward`` is exact at any length.
"""

from __future__ import annotations

import math

import torch

from .base import SequenceLayer, complex_dtype, real_param
from .hippo import discretize_bilinear, discretize_zoh, init_log_dt, nplr_legs, s4d_init
from .kernels import fft_conv, vandermonde_kernel, vandermonde_powers

DISCS = ("zoh", "bilinear")


class DiagonalSSM(SequenceLayer):
    """The views every diagonal layer shares (S4D, DSS): Vandermonde kernel and FFT
    convolution, the state carry, and the diagonal step. A subclass defines ``discrete()`` ->
    log_Ab (H, N2), Ab (H, N2), Bb (H, N2), C (c, H, N2) with y = 2 Re(C x) + D u, and ``D``."""

    def kernel(self, L: int) -> torch.Tensor:
        """Convolution kernel K (c, H, L)."""
        log_Ab, _, Bb, C = self.discrete()
        powers = vandermonde_powers(log_Ab, L, Bb.dtype)  # (H, N2, L)
        return vandermonde_kernel(C, Bb, powers)  # (c, H, L)

    # -- parallel view ---------------------------------------------------------------------
    def forward(
        self, u: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False
    ):
        """u (B, L, H) [, state (B, H, N2) complex] -> y (B, L, H) [, state (B, H, N2)]."""
        if self.bidirectional and (state is not None or return_state):
            self._check_recurrent()
        L = u.shape[1]
        log_Ab, Ab, Bb, C = self.discrete()
        powers = vandermonde_powers(log_Ab, L + 1, Bb.dtype)  # (H, N2, L+1)  Ab^0 .. Ab^L
        K = vandermonde_kernel(C, Bb, powers[..., :L])  # (c, H, L)
        u_ = u.transpose(1, 2)  # (B, H, L)
        y = fft_conv(u_, K[0]) + self.D.unsqueeze(-1) * u_  # (B, H, L)
        if self.bidirectional:
            y = y + fft_conv(u_.flip(-1), K[1]).flip(-1)  # (B, H, L)  anti-causal half
        if state is not None:
            y = y + 2 * torch.einsum("hn,hnl,bhn->bhl", C[0], powers[..., 1:], state).real
        y = y.transpose(1, 2)  # (B, L, H)
        if not return_state:
            return y
        # (B, H, N2)
        x = Bb * torch.einsum("bhl,hnl->bhn", u_.to(Ab.dtype), powers[..., :L].flip(-1))
        if state is not None:
            x = x + powers[..., L] * state  # (B, H, N2)
        return y, x

    # -- recurrent view --------------------------------------------------------------------
    def default_state(self, batch: int) -> torch.Tensor:
        self._check_recurrent()
        N2 = self.d_state // 2
        return torch.zeros(batch, self.d_model, N2, dtype=complex_dtype(self._dtype),
                           device=self._device)  # (B, H, N2)

    def step(self, u_t: torch.Tensor, state: torch.Tensor):
        """u_t (B, H), state (B, H, N2) -> y_t (B, H), state (B, H, N2)."""
        self._check_recurrent()
        _, Ab, Bb, C = self._cached(self.discrete)
        x = Ab * state + Bb * u_t.unsqueeze(-1)  # (B, H, N2)
        y = 2 * (C[0] * x).sum(-1).real + self.D * u_t  # (B, H)
        return y, x


class S4DLayer(DiagonalSSM):
    ssm_parameter_names = ("log_A_real", "A_imag", "B", "log_dt")

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs", disc: str = "zoh",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, learn_dt: bool = True,
                 bidirectional: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        if disc not in DISCS:
            raise ValueError(f"disc must be one of {DISCS}, got {disc!r}")
        H, N2 = d_model, d_state // 2
        self.d_model, self.d_state, self.disc = d_model, d_state, disc
        self.bidirectional = bidirectional
        A = torch.as_tensor(s4d_init(init, d_state, generator)).expand(H, N2)  # (H, N2)
        if init == "legs":
            B = torch.as_tensor(nplr_legs(d_state)[2]).expand(H, N2)  # (H, N2)  V^H B_hippo
        elif init in ("random", "unstructured"):
            B = torch.randn(H, N2, dtype=torch.complex128, generator=generator)  # (H, N2)
        else:
            B = torch.ones(H, N2, dtype=torch.complex128)  # (H, N2)
        C = torch.randn(1 + bidirectional, H, N2, dtype=torch.complex128, generator=generator)
        log_dt = init_log_dt(H, dt_min, dt_max, generator)  # (H,)
        self.log_A_real = real_param(torch.log(-A.real))  # (H, N2)
        self.A_imag = real_param(A.imag)  # (H, N2)
        self.B = real_param(torch.view_as_real(B.contiguous()))  # (H, N2, 2)
        self.C = real_param(torch.view_as_real(C * math.sqrt(0.5)))  # (c, H, N2, 2)
        self.D = real_param(torch.randn(H, generator=generator, dtype=torch.float64))  # (H,)
        if learn_dt:
            self.log_dt = real_param(log_dt)  # (H,)
        else:
            self.register_buffer("log_dt", real_param(log_dt).data)  # (H,) fixed step (ablation)

    # -- parameters and discretisation ---------------------------------------------------
    def discrete(self):
        """-> log_Ab (H, N2) (float64 for zoh), Ab (H, N2), Bb (H, N2), C (c, H, N2)."""
        dt = torch.exp(self.log_dt).unsqueeze(-1)  # (H, 1)
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # (H, N2)
        B = torch.view_as_complex(self.B)  # (H, N2)
        C = torch.view_as_complex(self.C)  # (c, H, N2)
        if self.disc == "zoh":
            Ab, Bb = discretize_zoh(A, B, dt)  # (H, N2), (H, N2)
            # (H, N2)  the exact logarithm, in float64 (see kernels.vandermonde_powers)
            log_Ab = dt.double() * A.to(torch.complex128)
        else:
            Ab, Bb = discretize_bilinear(A, B, dt)  # (H, N2), (H, N2)
            log_Ab = torch.log(Ab)  # (H, N2)  |Ab| < 1, any branch gives Ab^l exactly
        return log_Ab, Ab, Bb, C
