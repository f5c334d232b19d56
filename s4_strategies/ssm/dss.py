"""DSS: diagonal state spaces (Gupta, Gu & Berant, "Diagonal State Spaces are as Effective as
Structured State Spaces", NeurIPS 2022), with the DSS-exp and DSS-softmax kernels.

One diagonal Λ (N2 complex modes, shared by the H channels), a step Δ_h and a complex w_h per
channel (w = the elementwise product of C V and V^{-1} B, learned as one vector). With
P_{n,k} = λ_n k Δ (Proposition 1):

    DSS-exp:      K = Re( w · Λ^{-1} (e^{ΛΔ} − I) · elementwise-exp(P) ),  Re λ = −exp(·) < 0
    DSS-softmax:  K = Re( w · Λ^{-1} · row-softmax_ε(P) ),  softmax over k = 0 .. l_max − 1

Both are the zero-order hold of (Λ, B = 1) with output w: the recurrence of every channel is

    x_k = Ab x_{k-1} + Bb u_k,   y_k = Re(w x_k) + D u_k,   Ab = e^{ΛΔ}
    exp:      Bb = Λ^{-1} (e^{ΛΔ} − 1)
    softmax:  Bb = Λ^{-1} reciprocal_ε( Σ_{r<l_max} e^{rλΔ} ),  reciprocal_ε(z) = z̄ / (z z̄ + ε)

so the layer reuses the Vandermonde kernel, FFT convolution and state carry of the other
diagonal layer (:class:`~s4_strategies.ssm.s4d.DiagonalSSM`, with C = w/2 in its
y = 2 Re(C x) convention).

Two choices a per-bar trading stream forces on DSS-softmax, where the paper trains on
sequences of one fixed length L: its normalisation runs over a fixed ``l_max`` (the paper's
L; set it to the training window), so the kernel's first taps do not depend on the length of
the input and the recurrent view exists; and Re λ is clipped at −1e-4 as S5's ``clip_eigs``
(which its authors advise for unbounded lengths): the paper lets it be positive, which the
softmax bounds over L bars but a stream of unbounded length would not survive.
"""

from __future__ import annotations

import torch

from .base import real_param
from .hippo import init_log_dt, s4d_init
from .s4d import DiagonalSSM

DSS_KERNELS = ("exp", "softmax")
EPS = 1e-7  # the paper's ε of reciprocal_ε
MAX_REAL = -1e-4  # DSS-softmax: Re λ <= this (S5's clip_eigs)


def reciprocal(z: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """reciprocal_ε(z) = conj(z) / (z conj(z) + ε): bounded by 1 / (2 sqrt(ε))."""
    return z.conj() / (z * z.conj() + eps)


class DSSLayer(DiagonalSSM):
    """DSS layer: ``kernel="exp"`` (DSS-exp) or ``"softmax"`` (DSS-softmax over ``l_max``).

    Parameters as the paper's: Λ (log of −Re λ for exp; Re λ for softmax; Im λ) of N2 =
    d_state / 2 modes shared by the channels, ``W`` (H, N2) complex ~ N(0, 1) per part,
    ``log_dt`` (H,) log-uniform in [dt_min, dt_max], ``D`` (H,) ~ N(0, 1). Λ starts at the
    S4D initialisation ``init`` ("legs": the eigenvalues of the skew part of HiPPO-LegS,
    −1/2 + iω, the paper's)."""

    def __init__(self, d_model: int, d_state: int = 64, init: str = "legs", kernel: str = "exp",
                 l_max: int = 512, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 learn_dt: bool = True, bidirectional: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        if kernel not in DSS_KERNELS:
            raise ValueError(f"kernel must be one of {DSS_KERNELS}, got {kernel!r}")
        if l_max < 1:
            raise ValueError(f"l_max must be a positive number of steps, got {l_max}")
        H, N2 = d_model, d_state // 2
        self.d_model, self.d_state, self.kernel_kind, self.l_max = d_model, d_state, kernel, l_max
        self.bidirectional = bidirectional
        Lam = torch.as_tensor(s4d_init(init, d_state, generator))  # (N2,)
        W = torch.randn(1 + bidirectional, H, N2, dtype=torch.complex128, generator=generator)
        W = W * 2 ** 0.5  # each part ~ N(0, 1)
        log_dt = init_log_dt(H, dt_min, dt_max, generator)  # (H,)
        if kernel == "exp":
            self.Lambda_log_neg_re = real_param(torch.log(-Lam.real))  # (N2,)
        else:
            self.Lambda_re = real_param(Lam.real)  # (N2,)
        self.Lambda_im = real_param(Lam.imag)  # (N2,)
        self.W = real_param(torch.view_as_real(W))  # (c, H, N2, 2)
        self.D = real_param(torch.randn(H, generator=generator, dtype=torch.float64))  # (H,)
        if learn_dt:
            self.log_dt = real_param(log_dt)  # (H,)
        else:
            self.register_buffer("log_dt", real_param(log_dt).data)  # (H,) fixed step (ablation)
        re = "Lambda_log_neg_re" if kernel == "exp" else "Lambda_re"
        self.ssm_parameter_names = (re, "Lambda_im", "W", "log_dt")

    def Lambda(self) -> torch.Tensor:
        """Λ (N2,) complex: Re λ = −exp(·) for DSS-exp, clipped at −1e-4 for DSS-softmax."""
        if self.kernel_kind == "exp":
            return torch.complex(-torch.exp(self.Lambda_log_neg_re), self.Lambda_im)
        return torch.complex(self.Lambda_re.clamp(max=MAX_REAL), self.Lambda_im)

    def discrete(self):
        """-> log_Ab (H, N2) float64, Ab (H, N2), Bb (H, N2), C = w/2 (c, H, N2)."""
        dt = torch.exp(self.log_dt).unsqueeze(-1)  # (H, 1)
        Lam = self.Lambda()  # (N2,)
        dtL = dt * Lam  # (H, N2)  P_{n,1} = λ_n Δ
        Ab = torch.exp(dtL)  # (H, N2)
        if self.kernel_kind == "exp":
            Bb = (Ab - 1) / Lam  # (H, N2)  Λ^{-1}(e^{ΛΔ} − 1)
        else:
            # Σ_{r<l_max} e^{rλΔ} = (e^{l_max λΔ} − 1) / (e^{λΔ} − 1) (|e^{λΔ}| < 1), formed in
            # float64: e^{λΔ} − 1 is ~1e-4 at the smallest steps
            d = dtL.to(torch.complex128)  # (H, N2)
            total = torch.expm1(self.l_max * d) / torch.expm1(d)  # (H, N2)
            Bb = (reciprocal(total) / Lam.to(d.dtype)).to(Ab.dtype)  # (H, N2)
        C = torch.view_as_complex(self.W) / 2  # (c, H, N2)  y = 2 Re(C x) = Re(w x)
        log_Ab = dt.double() * Lam.to(torch.complex128)  # (H, N2)  the exact logarithm
        return log_Ab, Ab, Bb, C
