"""S4: diagonal plus low rank state matrix, Cauchy kernel with the Woodbury correction.

Per channel h (H = d_model channels, N = d_state, N2 = N/2 half modes, see :mod:`hippo`):

    A = Lambda - P P^H            Re Lambda = -exp(log_A_real) < 0 and Q = P (tied), so the
                                  Hermitian part of A is negative definite: always stable
    Ab = (I - dt/2 A)^{-1} (I + dt/2 A),   Bb = (I - dt/2 A)^{-1} dt B      (bilinear)
    x_k = Ab x_{k-1} + Bb u_k,     y_k = 2 Re(C x_k) + D u_k

Parallel view (length L, computed for the actual L on every call, hence exact at any L):

    K_hat(omega_k) = C~ (I - Ab omega_k)^{-1} Bb,   C~ = C (I - Ab^L),  omega_k = e^{-2 pi i k/L}
    K = irfft(K_hat)            the kernel truncated at exactly L steps, K_l = C Ab^l Bb
    y = K * u + D u             causal FFT convolution

``C~ = C (I - Ab^L)`` is what makes the generating function at the roots of unity the DFT of
the L-step kernel: sum_{l<L} C Ab^l Bb z^l = C (I - Ab^L z^L)(I - Ab z)^{-1} Bb and z^L = 1.
``Ab^L`` is a dense (N, N) power per channel, by repeated squaring, on the real
coordinates [Re x; Im x] of the half-mode state (a real matrix: 4x cheaper than complex).
The resolvent is the Cauchy kernel plus the rank-1 Woodbury correction
(:class:`kernels.CauchyWoodbury`).

Continuing from a state x0 adds t_k = C Ab^{k+1} x0, whose generating function is the same
resolvent applied to (2/dt) x0 + A x0. The state after L steps is
``Ab^L x0 + (I - Ab^L) (1/L) sum_k omega_k u_hat_k M_k^{-1} 2B`` (the inverse DFT of the
truncated state kernel Ab^l Bb contracted with the reversed input).

Recurrent view (the S4 paper's O(N) step, no dense matrix, no diagonalisation): with
E = 1 - dt/2 Lambda and s(x) = P^H x = 2 Re sum_n conj(P_n) x_n (a real number),

    w = [(1 + dt/2 Lambda) x - dt/2 P s(x) + dt B u] / E          (I + dt/2 A) x + dt B u
    x' = w - kappa P/E s(w),  kappa = (dt/2) / (1 + dt/2 s(P/E))  (Woodbury for (I - dt/2 A)^{-1})

HiPPO-LegS is not stably diagonalisable (its eigenvector matrix has condition number
~1e20 at N = 64), so this DPLR recurrence, not an equivalent diagonal system, is also what
the numpy stepper runs.
"""

from __future__ import annotations

import torch

from .base import SequenceLayer, complex_dtype, real_param
from .hippo import dplr_init, init_log_dt
from .kernels import (
    CauchyWoodbury,
    dplr_dense,
    dplr_real,
    fft_conv,
    from_real,
    to_real,
    unit_roots,
)


class S4Layer(SequenceLayer):
    ssm_parameter_names = ("log_A_real", "A_imag", "P", "B", "log_dt")

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs",
                 dt_min: float = 1e-3, dt_max: float = 1e-1, learn_dt: bool = True,
                 bidirectional: bool = False, generator: torch.Generator | None = None,
                 freq_chunk: int = 4096):
        super().__init__()
        H, N2 = d_model, d_state // 2
        self.d_model, self.d_state, self.bidirectional = d_model, d_state, bidirectional
        self.freq_chunk = freq_chunk
        Lam, P, B = (torch.as_tensor(v).expand(H, N2) for v in dplr_init(init, d_state, generator))
        C = torch.randn(1 + bidirectional, H, N2, dtype=torch.complex128, generator=generator)
        self.log_A_real = real_param(torch.log(-Lam.real))  # (H, N2)
        self.A_imag = real_param(Lam.imag)  # (H, N2)
        self.P = real_param(torch.view_as_real(P.contiguous()))  # (H, N2, 2)
        self.B = real_param(torch.view_as_real(B.contiguous()))  # (H, N2, 2)
        self.C = real_param(torch.view_as_real(C * 0.5 ** 0.5))  # (c, H, N2, 2)
        self.D = real_param(torch.randn(H, generator=generator, dtype=torch.float64))  # (H,)
        log_dt = init_log_dt(H, dt_min, dt_max, generator)  # (H,)
        if learn_dt:
            self.log_dt = real_param(log_dt)  # (H,)
        else:
            self.register_buffer("log_dt", real_param(log_dt).data)  # (H,)

    def params(self):
        """-> dt (H,), Lam (H, N2), P (H, N2), B (H, N2), C (c, H, N2)."""
        Lam = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # (H, N2)
        return (torch.exp(self.log_dt), Lam, torch.view_as_complex(self.P),
                torch.view_as_complex(self.B), torch.view_as_complex(self.C))

    def dense_Ab(self, real: bool = False) -> torch.Tensor:
        """The discrete matrix Ab (H, N, N): on the complex full state, or (real=True, used
        for Ab^L) on the real coordinates [Re x; Im x] of the half-mode state."""
        dt, Lam, P, _, _ = self.params()
        A = dplr_real(Lam, P) if real else dplr_dense(Lam, P)  # (H, N, N)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        dtm = dt[:, None, None]  # (H, 1, 1)
        return torch.linalg.solve(eye - dtm / 2 * A, eye + dtm / 2 * A)  # (H, N, N)

    @staticmethod
    def _C_tilde(C: torch.Tensor, AbL: torch.Tensor) -> torch.Tensor:
        """C~ = C (I - Ab^L). C (c, H, N2), AbL (H, N, N) real coordinates -> (c, H, N2).

        y = 2 Re(C x) is the real row [2 Re C, -2 Im C] on [Re x; Im x]; back the same way."""
        c = torch.cat([C.real, -C.imag], -1)  # (c, H, N)  (half of the real row)
        r = c - torch.einsum("chn,hnm->chm", c, AbL)  # (c, H, N)
        return torch.complex(r[..., : C.shape[-1]], -r[..., C.shape[-1]:])  # (c, H, N2)

    def kernel(self, L: int) -> torch.Tensor:
        """Convolution kernel K (c, H, L), K_l = C Ab^l Bb."""
        dt, Lam, P, B, C = self.params()
        AbL = torch.linalg.matrix_power(self.dense_Ab(real=True), L)  # (H, N, N)
        omega = unit_roots(L, L // 2 + 1, Lam.device, Lam.real.dtype)  # (L/2+1,)
        cw = CauchyWoodbury(dt, Lam, P, omega)
        K_hat = cw.bilinear_form(self._C_tilde(C, AbL), 2 * B.unsqueeze(0))  # (c, 1, H, L/2+1)
        return torch.fft.irfft(K_hat[:, 0], n=L)  # (c, H, L)

    # -- parallel view ---------------------------------------------------------------------
    def forward(
        self, u: torch.Tensor, state: torch.Tensor | None = None, return_state: bool = False
    ):
        """u (B, L, H) [, state (B, H, N2) complex] -> y (B, L, H) [, state (B, H, N2)]."""
        if self.bidirectional and (state is not None or return_state):
            self._check_recurrent()
        Bsz, L, H = u.shape
        dt, Lam, P, B, C = self.params()
        AbL = torch.linalg.matrix_power(self.dense_Ab(real=True), L)  # (H, N, N)
        C_t = self._C_tilde(C, AbL)  # (c, H, N2)
        Y = 2 * B.unsqueeze(0)  # (1, H, N2)
        if state is not None:
            s = 2 * (P.conj() * state).sum(-1).real.unsqueeze(-1)  # (B, H, 1)  P^H x0
            Ax0 = Lam * state - P * s  # (B, H, N2)  A x0
            Y = torch.cat([Y, (2 / dt).unsqueeze(-1) * state + Ax0])  # (1+B, H, N2)
        omega = unit_roots(L, L // 2 + 1, u.device, u.dtype)  # (L/2+1,)
        cw = CauchyWoodbury(dt, Lam, P, omega)
        K_hat = cw.bilinear_form(C_t, Y)  # (c, m, H, L/2+1)
        K = torch.fft.irfft(K_hat, n=L)  # (c, m, H, L)
        u_ = u.transpose(1, 2)  # (B, H, L)
        y = fft_conv(u_, K[0, 0]) + self.D.unsqueeze(-1) * u_  # (B, H, L)
        if self.bidirectional:
            y = y + fft_conv(u_.flip(-1), K[1, 0]).flip(-1)  # (B, H, L)
        if state is not None:
            y = y + K[0, 1:]  # (B, H, L)  C Ab^{t+1} x0
        y = y.transpose(1, 2)  # (B, L, H)
        if not return_state:
            return y
        return y, self._final_state(u_, state, dt, Lam, P, B, AbL)

    def _final_state(self, u_, state, dt, Lam, P, B, AbL):
        """x_L = Ab^L x0 + (I - Ab^L) (1/L) sum_k omega_k u_hat_k [M_k^{-1} 2B]. u_ (B, H, L)."""
        Bsz, H, L = u_.shape
        N2 = Lam.shape[-1]
        u_hat = torch.fft.fft(u_, dim=-1)  # (B, H, L)
        omega = unit_roots(L, L, u_.device, u_.dtype)  # (L,)
        z = 0
        for k0 in range(0, L, self.freq_chunk):  # frequency chunks bound the memory
            om = omega[k0:k0 + self.freq_chunk]  # (k,)
            v = CauchyWoodbury(dt, Lam, P, om).resolvent_first_half(2 * B)  # (H, N2, k)
            z = z + torch.einsum("bhk,hnk->bhn", u_hat[..., k0:k0 + self.freq_chunk] * om, v) / L
        eye = torch.eye(2 * N2, dtype=AbL.dtype, device=AbL.device)
        x = torch.einsum("hmn,bhn->bhm", eye - AbL, to_real(z))  # (B, H, N)  real coordinates
        if state is not None:
            x = x + torch.einsum("hmn,bhn->bhm", AbL, to_real(state))  # (B, H, N)
        return from_real(x)  # (B, H, N2)

    # -- recurrent view --------------------------------------------------------------------
    def default_state(self, batch: int) -> torch.Tensor:
        self._check_recurrent()
        return torch.zeros(batch, self.d_model, self.d_state // 2,
                           dtype=complex_dtype(self._dtype), device=self._device)  # (B, H, N2)

    def recurrence(self):
        """Coefficients of the O(N) step: alpha, beta, gamma, rho (H, N2), Pc = conj P (H, N2).

        x' = w - rho s(w),  w = alpha x - beta s(x) + gamma u,  s(v) = 2 Re sum_n Pc_n v_n."""
        dt, Lam, P, B, _ = self.params()
        h = (dt / 2).unsqueeze(-1)  # (H, 1)
        E = 1 - h * Lam  # (H, N2)
        r = 2 * (P.conj() * P / E).sum(-1).real.unsqueeze(-1)  # (H, 1)  P^H E^{-1} P
        kappa = h / (1 + h * r)  # (H, 1)
        return (1 + h * Lam) / E, h * P / E, 2 * h * B / E, kappa * P / E, P.conj()

    def step(self, u_t: torch.Tensor, state: torch.Tensor):
        """u_t (B, H), state (B, H, N2) -> y_t (B, H), state (B, H, N2)."""
        self._check_recurrent()
        alpha, beta, gamma, rho, Pc, C = self._cached(
            lambda: (*self.recurrence(), torch.view_as_complex(self.C)[0]))  # (H, N2) each
        s = 2 * (Pc * state).sum(-1, keepdim=True).real  # (B, H, 1)
        w = alpha * state - beta * s + gamma * u_t.unsqueeze(-1)  # (B, H, N2)
        x = w - rho * 2 * (Pc * w).sum(-1, keepdim=True).real  # (B, H, N2)
        y = 2 * (C * x).sum(-1).real + self.D * u_t  # (B, H)
        return y, x


__all__ = ["S4Layer"]
