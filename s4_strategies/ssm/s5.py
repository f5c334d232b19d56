"""S5: one multi-input multi-output state shared by every channel, run by a parallel scan.

Smith, Warrington & Linderman, "Simplified State Space Layers for Sequence Modeling" (ICLR
2023). The continuous system ``x' = A x + B u``, ``y = C x + D u`` has a state of size P for
all H channels together: A (P, P) is HiPPO-N, the normal part ``S = A_LegS + p pᵀ`` of
HiPPO-LegS (``hippo.nplr_legs``), block-diagonal with J blocks of size P/J; B (P, H),
C (H, P). S is normal, so ``A = V Λ V⁻¹`` with V unitary (V⁻¹ = V^H), and the layer learns
in the eigenbasis, keeping one mode of each conjugate pair (outputs are real):

    Λ (P/2,) complex,  B̃ = V⁻¹ B (P/2, H),  C̃ = C V (H, P/2),  D (H,),  Δ (P/2,) per state
    zoh:       Λ̄ = exp(Λ Δ),                   B̄ = Λ⁻¹ (Λ̄ − 1) B̃
    bilinear:  Λ̄ = (1 + Δ/2 Λ) / (1 − Δ/2 Λ),  B̄ = Δ / (1 − Δ/2 Λ) B̃
    x_k = Λ̄ x_{k-1} + B̄ u_k,   y_k = 2 Re(C̃ x_k) + D u_k

Training view: no convolution kernel; the pairs (Λ̄, B̄ u_k) are combined by the associative
operator ``(a_i, b_i) • (a_j, b_j) = (a_j a_i, a_j b_i + b_j)`` in a parallel scan
(:func:`associative_scan`, O(L) work in O(log L) steps; :func:`scan_ref` is the loop it
equals). Inference view: one step of the recurrence per bar.

Initialisation as the reference implementation's: B lecun-normal (P, H) real then B̃ = V⁻¹B;
C complex, each part lecun-normal (H, P) (standard deviation 1/√P), then C̃ = C V;
D ~ N(0, 1); log Δ uniform in [log dt_min, log dt_max] per state. Re Λ is clipped at −1e-4
(the reference's ``clip_eigs``, which its authors advise for unbounded sequence lengths: a
bar stream is one).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .base import SequenceLayer, complex_dtype, real_param
from .hippo import discretize_bilinear, discretize_zoh, init_log_dt, nplr_legs

S5_DISCS = ("zoh", "bilinear")
S5_INITS = ("legs",)
MAX_REAL = -1e-4  # clip_eigs


def s5_init(P: int, blocks: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The diagonalised block-diagonal HiPPO-N of state size P with J = ``blocks`` blocks.

    Returns Λ (P/2,) (each block's P/(2J) eigenvalues −1/2 + iω, ω > 0, repeated J times)
    and V (P, P/2), block-diagonal with the blocks' eigenvectors, so that the full
    ``[V, V̄] diag(Λ, Λ̄) [V, V̄]^H`` is ``blockdiag(S, ..., S)`` and ``V^H V = I``."""
    if blocks < 1 or P % (2 * blocks):
        raise ValueError(f"d_state ({P}) must split into {blocks} block(s) of even size")
    n = P // blocks
    Lam, _, _, V = nplr_legs(n)  # (n/2,), (n, n/2)
    Vb = np.zeros((P, P // 2), dtype=complex)
    for j in range(blocks):
        Vb[j * n:(j + 1) * n, j * n // 2:(j + 1) * n // 2] = V
    return np.tile(Lam, blocks), Vb


def _lecun(shape, fan_in: int, generator) -> torch.Tensor:
    """Truncated normal (±2σ) with standard deviation 1/√fan_in (jax's lecun_normal)."""
    t = torch.empty(shape, dtype=torch.float64)
    torch.nn.init.trunc_normal_(t, 0.0, 1.0, -2.0, 2.0, generator=generator)
    return t / (0.87962566103423978 * math.sqrt(fan_in))  # the truncated unit-normal's sd


def scan_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The loop: ``x_k = a x_{k-1} + b_k`` from ``x_{-1} = 0``. a (N,), b (..., L, N)."""
    xs, x = [], torch.zeros_like(b[..., 0, :])
    for b_k in b.unbind(-2):
        x = a * x + b_k  # (..., N)
        xs.append(x)
    return torch.stack(xs, -2)  # (..., L, N)


def associative_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x_k = a x_{k-1} + b_k`` for every k at once, with the associative operator
    ``(a_i, b_i) • (a_j, b_j) = (a_j a_i, a_j b_i + b_j)``: combine neighbouring pairs, scan
    the L/2 pairs (their a is a²), then fill in the even positions. O(L) work, log₂ L levels.
    a (N,) time-invariant, b (..., L, N) -> x (..., L, N)."""
    L = b.shape[-2]
    if L == 1:
        return b
    even, odd = b[..., 0:L - 1:2, :], b[..., 1::2, :]  # (..., L//2, N) each
    x_odd = associative_scan(a * a, a * even + odd)  # x_1, x_3, ...  (..., L//2, N)
    # x_0 = b_0, x_2i = a x_{2i-1} + b_2i  (..., (L+1)//2, N)
    x_even = torch.cat([b[..., :1, :], a * x_odd[..., :(L - 1) // 2, :] + b[..., 2::2, :]], -2)
    pairs = torch.stack([x_even[..., :L // 2, :], x_odd], -2)  # (..., L//2, 2, N)
    x = pairs.flatten(-3, -2)  # (..., 2 (L//2), N)  interleaved
    return torch.cat([x, x_even[..., L // 2:, :]], -2) if L % 2 else x  # (..., L, N)


class S5Layer(SequenceLayer):
    """S5 layer: H = ``d_model`` channels, state size P = ``d_state`` (P/2 complex modes),
    ``blocks`` J, ``disc`` "zoh" or "bilinear". ``bidirectional``: a second C̃ reads a
    reverse scan of the same (Λ̄, B̄u), as in the reference."""

    ssm_parameter_names = ("Lambda_re", "Lambda_im", "B", "log_step")

    def __init__(self, d_model: int, d_state: int = 64, blocks: int = 1, init: str = "legs",
                 disc: str = "zoh", dt_min: float = 1e-3, dt_max: float = 1e-1,
                 learn_dt: bool = True, bidirectional: bool = False,
                 generator: torch.Generator | None = None):
        super().__init__()
        if disc not in S5_DISCS:
            raise ValueError(f"disc must be one of {S5_DISCS}, got {disc!r}")
        if init not in S5_INITS:
            raise ValueError(f"S5 starts from HiPPO-N: init must be one of {S5_INITS}, got "
                             f"{init!r}")
        H, P = d_model, d_state
        self.d_model, self.d_state, self.blocks, self.disc = H, P, blocks, disc
        self.bidirectional = bidirectional
        Lam, V = (torch.as_tensor(a) for a in s5_init(P, blocks))  # (P/2,), (P, P/2)
        B = _lecun((P, H), P, generator).to(V.dtype)  # (P, H)
        C = torch.complex(_lecun((1 + bidirectional, H, P), P, generator),
                          _lecun((1 + bidirectional, H, P), P, generator))  # (c, H, P)
        log_step = init_log_dt(P // 2, dt_min, dt_max, generator)  # (P/2,)
        self.Lambda_re = real_param(Lam.real)  # (P/2,)
        self.Lambda_im = real_param(Lam.imag)  # (P/2,)
        self.B = real_param(torch.view_as_real(V.conj().T @ B))  # (P/2, H, 2)  B̃ = V⁻¹B
        self.C = real_param(torch.view_as_real(C @ V))  # (c, H, P/2, 2)  C̃ = C V
        self.D = real_param(torch.randn(H, generator=generator, dtype=torch.float64))  # (H,)
        if learn_dt:
            self.log_step = real_param(log_step)  # (P/2,)
        else:
            self.register_buffer("log_step", real_param(log_step).data)  # (P/2,) fixed

    def discrete(self):
        """-> Λ̄ (P/2,), B̄ (P/2, H), C̃ (c, H, P/2)."""
        Lam = torch.complex(self.Lambda_re.clamp(max=MAX_REAL), self.Lambda_im)  # (P/2,)
        dt = torch.exp(self.log_step).unsqueeze(-1)  # (P/2, 1)
        fn = discretize_zoh if self.disc == "zoh" else discretize_bilinear
        Ab, Bb = fn(Lam.unsqueeze(-1), torch.view_as_complex(self.B), dt)  # (P/2, 1), (P/2, H)
        return Ab.squeeze(-1), Bb, torch.view_as_complex(self.C)

    # -- parallel view ---------------------------------------------------------------------
    def forward(self, u: torch.Tensor, state: torch.Tensor | None = None,
                return_state: bool = False):
        """u (B, L, H) [, state (B, P/2) complex] -> y (B, L, H) [, state (B, P/2)]."""
        if self.bidirectional and (state is not None or return_state):
            self._check_recurrent()
        Ab, Bb, C = self.discrete()
        Bu = torch.einsum("ph,blh->blp", Bb, u.to(Bb.dtype))  # (B, L, P/2)
        if state is not None:  # x_0 = Λ̄ x_{-1} + B̄ u_0
            Bu = torch.cat([Bu[:, :1] + (Ab * state).unsqueeze(1), Bu[:, 1:]], 1)
        x = associative_scan(Ab, Bu)  # (B, L, P/2)
        y = 2 * torch.einsum("hp,blp->blh", C[0], x).real + self.D * u  # (B, L, H)
        if self.bidirectional:
            x_rev = associative_scan(Ab, Bu.flip(1)).flip(1)  # (B, L, P/2)
            y = y + 2 * torch.einsum("hp,blp->blh", C[1], x_rev).real  # (B, L, H)
        return (y, x[:, -1]) if return_state else y

    # -- recurrent view --------------------------------------------------------------------
    def default_state(self, batch: int) -> torch.Tensor:
        self._check_recurrent()
        return torch.zeros(batch, self.d_state // 2, dtype=complex_dtype(self._dtype),
                           device=self._device)  # (B, P/2)

    def step(self, u_t: torch.Tensor, state: torch.Tensor):
        """u_t (B, H), state (B, P/2) -> y_t (B, H), state (B, P/2)."""
        self._check_recurrent()
        Ab, Bb, C = self._cached(self.discrete)
        x = Ab * state + u_t.to(Bb.dtype) @ Bb.T  # (B, P/2)
        y = 2 * (x @ C[0].T).real + self.D * u_t  # (B, H)
        return y, x
