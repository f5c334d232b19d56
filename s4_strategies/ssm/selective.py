"""A readable pure-PyTorch selective SSM (Mamba-style): input-dependent dt, B and C.

Shapes: B batch, L length, H = d_model, E = expand * d_model (inner channels),
N = d_state (real state per inner channel), R = dt_rank.

    (x, z)  = in_proj(u)                                   (B, L, E) each
    x       = silu(causal depthwise conv1d(x))             (B, L, E)
    dt      = softplus(dt_proj(x_proj_R(x)))               (B, L, E)   input-dependent step
    B_t,C_t = x_proj_N(x)                                  (B, L, N)   input-dependent B, C
    h_t     = exp(dt_t A) h_{t-1} + dt_t B_t x_t           (B, E, N)   A = -exp(A_log) < 0
    y_t     = C_t h_t + D x_t                              (B, L, E)
    out     = out_proj(y * silu(z))                        (B, L, H)

State / cache contract: ``(conv_state, h)`` with ``conv_state`` (B, E, d_conv - 1) the last
d_conv - 1 conv inputs and ``h`` (B, E, N) the SSM state. ``default_state`` is zeros, which is
exactly the zero left-padding of the causal convolution, so step and forward agree.

Scans (:mod:`scan`, all tested equal, gradients included): ``selective_scan_ref`` the
slow sequential reference; ``selective_scan_chunked`` a two-level chunked parallel scan
(O(L) work in ~2 sqrt(L) Python steps); ``selective_scan_recompute`` the sequential loop
with a hand-written backward that recomputes states chunk by chunk instead of storing
all of them (Mamba's trick; O(B E N sqrt(L)) memory); ``selective_scan_compiled`` the same
scheme as numba kernels on the CPU (no Python step per bar). ``scan="auto"`` picks by
measured speed (see AUTO_CHUNKED_BELOW and :func:`auto_scan`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .base import SequenceLayer
from .scan import (
    COMPILED_SCAN,
    selective_scan_chunked,
    selective_scan_compiled,
    selective_scan_recompute,
    selective_scan_ref,
)

# scan="auto": on the CPU the compiled scan (numba kernels, forward and backward; memory
# O(B E N sqrt(L))) whenever it can run (numba installed, float32/float64). The scans alone,
# fwd+bwd, E 128, N 16, one thread (scripts/bench_ssm.py section 6, load average ~4 on 2
# cores): B 1, L 16384: 69 ms compiled vs 2.0 s chunked, 5.0 s recompute; B 8, L 1024: 39 ms
# vs 0.73 s, 0.69 s; B 32, L 1024: 0.15 s vs 4.5 s, 1.5 s. The default model's training step
# (batch 8, L 1024, section 5): 0.60 s compiled, 2.3 s recompute, 1.05 s for S4D. Without
# numba (or for other dtypes) the older rule on B * E * N elements: the chunked scan below
# the threshold (one long stream: few Python steps), the recompute loop above (a per-step
# loop amortises its per-op overhead and keeps memory flat). On CUDA: the chunked scan.
AUTO_CHUNKED_BELOW = 16384
SCANS = ("auto", "chunked", "recompute", "compiled", "sequential")
MAMBA_INITS = ("real", "random")


@dataclass
class MambaConfig:
    d_model: int
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | None = None  # None: ceil(d_model / 16)
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    init: str = "real"  # "real": A_n = -(n+1) (S4D-Real, as Mamba); "random": random stable
    learn_dt: bool = True  # False: dt is a fixed per-channel buffer, not input-dependent
    bidirectional: bool = False
    bias: bool = False
    conv_bias: bool = True
    scan: str = "auto"  # "compiled", "chunked", "recompute", "sequential" (reference), "auto"
    chunk_size: int | None = None  # None: ~sqrt(L)

    def __post_init__(self):
        if self.dt_rank is None:
            self.dt_rank = math.ceil(self.d_model / 16)
        if self.init not in MAMBA_INITS:
            raise ValueError(f"selective SSM init must be one of {MAMBA_INITS}, got {self.init!r}")
        if self.scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {self.scan!r}")

    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model


def auto_scan(x: torch.Tensor, A: torch.Tensor) -> str:
    """The scan ``scan="auto"`` runs for x (B, L, E) and A (E, N); see AUTO_CHUNKED_BELOW."""
    if x.is_cuda:
        return "chunked"
    if COMPILED_SCAN and x.dtype in (torch.float32, torch.float64):
        return "compiled"
    return "chunked" if x.shape[0] * A.numel() < AUTO_CHUNKED_BELOW else "recompute"


class SelectiveSSM(SequenceLayer):
    ssm_parameter_names = ("A_log", "dt_proj.bias")

    def __init__(self, config: MambaConfig | None = None, generator: torch.Generator | None = None,
                 **kwargs):
        super().__init__()
        cfg = config if config is not None else MambaConfig(**kwargs)
        self.config, self.d_model = cfg, cfg.d_model
        self.bidirectional = cfg.bidirectional
        E, N, R = cfg.d_inner, cfg.d_state, cfg.dt_rank if cfg.learn_dt else 0
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=cfg.bias)
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, bias=cfg.conv_bias)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        # dt initialised log-uniform in [dt_min, dt_max]; stored through softplus^{-1}
        log_span = math.log(cfg.dt_max) - math.log(cfg.dt_min)
        dt = torch.exp(torch.rand(E, generator=generator) * log_span
                       + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)  # (E,)
        if cfg.learn_dt:
            self.dt_proj = nn.Linear(R, E, bias=True)
            with torch.no_grad():
                nn.init.uniform_(self.dt_proj.weight, -R ** -0.5, R ** -0.5, generator=generator)
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^{-1}(dt)
        else:
            self.register_buffer("log_dt", torch.log(dt))  # (E,) fixed step (ablation)
        if cfg.init == "real":
            A = torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)  # (E, N)
        else:
            A = 0.5 + (N - 0.5) * torch.rand(E, N, generator=generator)  # (E, N)
        self.A_log = nn.Parameter(torch.log(A))  # (E, N)
        self.D = nn.Parameter(torch.ones(E))  # (E,)
        self.out_proj = nn.Linear(E, cfg.d_model, bias=cfg.bias)
        if cfg.bidirectional:  # an independent core reading the sequence backwards
            self.reverse = SelectiveSSM(replace(cfg, bidirectional=False), generator=generator)

    def _ssm_inputs(self, x):
        """x (..., E) -> dt (..., E), B (..., N), C (..., N)."""
        cfg = self.config
        R, N = (cfg.dt_rank if cfg.learn_dt else 0), cfg.d_state
        dbc = self.x_proj(x)  # (..., R + 2N)
        if cfg.learn_dt:
            dt = F.softplus(self.dt_proj(dbc[..., :R]))  # (..., E)
        else:
            dt = torch.exp(self.log_dt).expand_as(x)  # (..., E)
        return dt, dbc[..., R:R + N], dbc[..., R + N:]

    # -- parallel view ---------------------------------------------------------------------
    def forward(self, u: torch.Tensor, state=None, return_state: bool = False):
        """u (B, L, H) [, state (conv (B, E, K-1), h (B, E, N))] -> y (B, L, H) [, state]."""
        if self.bidirectional and (state is not None or return_state):
            self._check_recurrent()
        Bsz, L, _ = u.shape
        conv_state, h0 = self._zeros(Bsz) if state is None else state
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, E) each
        x_pad = torch.cat([conv_state, x.transpose(1, 2)], -1)  # (B, E, K-1+L)
        x = F.silu(F.conv1d(x_pad, self.conv1d.weight, self.conv1d.bias,
                            groups=self.config.d_inner)).transpose(1, 2).contiguous()  # (B, L, E)
        dt, B, C = self._ssm_inputs(x)  # (B, L, E), (B, L, N), (B, L, N)
        A = -torch.exp(self.A_log)  # (E, N)
        kind = self.config.scan if self.config.scan != "auto" else auto_scan(x, A)
        if kind == "chunked":
            scan = partial(selective_scan_chunked, chunk_size=self.config.chunk_size)
        elif kind == "recompute":
            scan = partial(selective_scan_recompute, chunk_size=self.config.chunk_size)
        elif kind == "compiled":
            scan = partial(selective_scan_compiled, chunk_size=self.config.chunk_size)
        else:
            scan = selective_scan_ref
        y, h = scan(x, dt, A, B, C, self.D, h0)  # (B, L, E), (B, E, N)
        out = self.out_proj(y * F.silu(z))  # (B, L, H)
        if self.bidirectional:
            out = out + self.reverse(u.flip(1)).flip(1)  # (B, L, H)
        if not return_state:
            return out
        return out, (x_pad[..., x_pad.shape[-1] - (self.config.d_conv - 1):], h)

    # -- recurrent view --------------------------------------------------------------------
    def default_state(self, batch: int):
        self._check_recurrent()
        return self._zeros(batch)

    def _zeros(self, batch: int):
        cfg, p = self.config, self.A_log
        return (p.new_zeros(batch, cfg.d_inner, cfg.d_conv - 1),  # (B, E, K-1)
                p.new_zeros(batch, cfg.d_inner, cfg.d_state))  # (B, E, N)

    def step(self, u_t: torch.Tensor, state):
        """u_t (B, H), state (conv (B, E, K-1), h (B, E, N)) -> y_t (B, H), state."""
        self._check_recurrent()
        conv_state, h = state
        x, z = self.in_proj(u_t).chunk(2, dim=-1)  # (B, E) each
        window = torch.cat([conv_state, x.unsqueeze(-1)], -1)  # (B, E, K)
        x = (window * self.conv1d.weight[:, 0]).sum(-1)  # (B, E)
        if self.conv1d.bias is not None:
            x = x + self.conv1d.bias
        x = F.silu(x)  # (B, E)
        dt, B, C = self._ssm_inputs(x)  # (B, E), (B, N), (B, N)
        A = -torch.exp(self.A_log)  # (E, N)
        # (B, E, N)
        h = torch.exp(dt.unsqueeze(-1) * A) * h + (dt * x).unsqueeze(-1) * B.unsqueeze(1)
        y = (h * C.unsqueeze(1)).sum(-1) + self.D * x  # (B, E)
        return self.out_proj(y * F.silu(z)), (window[..., 1:], h)


__all__ = ["MambaConfig", "SelectiveSSM", "auto_scan", "selective_scan_ref",
           "selective_scan_chunked", "selective_scan_recompute", "selective_scan_compiled"]
