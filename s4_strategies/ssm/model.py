"""The trading model: embedding, n_layers residual SSM blocks, heads at every time step.

    x (B, L, input_dim) -> Linear -> n_layers x [h + GLU(W drop(gelu(SSM(LayerNorm(h)))))]
                        -> LayerNorm -> heads:
        "logits"  (B, L, n_classes)      sell/hold/buy (3) or strong sell .. strong buy (5)
        "returns" (B, L, len(horizons))  forward returns at each horizon (e.g. 1, 5, 20 bars)
        "log_vol" (B, L)                 log of the next period's realised volatility

Every trading model here (SSM or baseline) has the same interface:

    forward(x, state=None, return_state=False) -> outputs [, state]
    default_state(batch);  step(x_t, state) -> (outputs_t, state)   x_t (B, input_dim)
    stepper() -> per-bar numpy inference object
    cfg -> its ModelConfig;  config -> cfg.to_dict(), the JSON dict with "kind"

and is built from one :class:`ModelConfig` (``S4TradingModel(cfg)``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SequenceLayer
from .config import SSM_KINDS, ModelConfig
from .dss import DSSLayer
from .s4 import S4Layer
from .s4d import S4DLayer
from .s5 import S5Layer
from .selective import MambaConfig, SelectiveSSM


class TradingHeads(nn.Module):
    """Linear heads applied to every time step. h (..., H) -> dict of (..., ...)."""

    def __init__(self, d_model: int, n_classes: int = 3, horizons=(1, 5, 20)):
        super().__init__()
        if n_classes not in (3, 5):
            raise ValueError(f"n_classes must be 3 or 5, got {n_classes}")
        self.logits = nn.Linear(d_model, n_classes)
        self.returns = nn.Linear(d_model, len(horizons))
        self.log_vol = nn.Linear(d_model, 1)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.logits(h),  # (..., n_classes)
                "returns": self.returns(h),  # (..., n_horizons)
                "log_vol": self.log_vol(h).squeeze(-1)}  # (...)


class TradingModel(nn.Module):
    """Base: built from a :class:`ModelConfig` of one of ``kinds``; the default stepper."""

    kinds: tuple[str, ...] = ()

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"{type(self).__name__} takes a ModelConfig, got {type(cfg).__name__} "
                            "(keywords: build_model(kind, input_dim, **options))")
        if cfg.kind not in self.kinds:
            raise ValueError(f"{type(self).__name__} is for kinds {self.kinds}, got {cfg.kind!r}")
        self.cfg = cfg

    @property
    def kind(self) -> str:
        return self.cfg.kind

    @property
    def config(self) -> dict:
        """The JSON dict of the config (checkpoints store it; ``model_from_config`` reads it)."""
        return self.cfg.to_dict()

    def stepper(self, **kwargs):
        from .stepper import TorchStepper
        return TorchStepper(self, **kwargs)


def make_ssm(cfg: ModelConfig) -> SequenceLayer:
    """One SSM sequence layer of kind ``cfg.layer`` (init None: the layer's own default)."""
    common = dict(learn_dt=cfg.learn_dt, bidirectional=cfg.bidirectional, dt_min=cfg.dt_min,
                  dt_max=cfg.dt_max)
    if cfg.layer == "s4":
        return S4Layer(cfg.d_model, cfg.d_state, init=cfg.init or "legs", **common)
    if cfg.layer == "s4d":
        return S4DLayer(cfg.d_model, cfg.d_state, init=cfg.init or "legs", disc=cfg.disc, **common)
    if cfg.layer == "s5":
        return S5Layer(cfg.d_model, cfg.d_state, blocks=cfg.blocks, init=cfg.init or "legs",
                       disc=cfg.disc, **common)
    if cfg.layer == "dss":
        return DSSLayer(cfg.d_model, cfg.d_state, init=cfg.init or "legs", kernel=cfg.kernel,
                        l_max=cfg.l_max, **common)
    return SelectiveSSM(MambaConfig(cfg.d_model, cfg.d_state, cfg.d_conv, cfg.expand, cfg.dt_rank,
                                    init=cfg.init or "real", scan=cfg.scan,
                                    chunk_size=cfg.chunk_size, **common))  # "mamba"


class SSMBlock(nn.Module):
    """Pre-norm residual block: h + GLU(W drop(gelu(SSM(LayerNorm(h))))). h (B, L, H)."""

    def __init__(self, d_model: int, ssm: nn.Module, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)
        self.ssm = ssm
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(d_model, 2 * d_model)

    def _mix(self, h, z):
        return h + F.glu(self.out(self.drop(F.gelu(z))), dim=-1)  # (..., H)

    def forward(self, h, state=None, return_state: bool = False):
        z = self.ssm(self.norm(h), state, return_state)  # (B, L, H)
        if return_state:
            z, state = z
            return self._mix(h, z), state
        return self._mix(h, z)

    def step(self, h_t, state):
        z, state = self.ssm.step(self.norm(h_t), state)  # (B, H)
        return self._mix(h_t, z), state


class SSMBackbone(nn.Module):
    """Embedding, blocks and the final norm. x (B, L, input_dim) -> h (B, L, H)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed = nn.Linear(cfg.input_dim, cfg.d_model)
        self.blocks = nn.ModuleList(SSMBlock(cfg.d_model, make_ssm(cfg), cfg.dropout)
                                    for _ in range(cfg.n_layers))
        self.norm_f = nn.LayerNorm(cfg.d_model)

    def forward(self, x, state=None, return_state: bool = False):
        h = self.embed(x)  # (B, L, H)
        states = []
        for i, block in enumerate(self.blocks):
            s = None if state is None else state[i]
            if return_state:
                h, s = block(h, s, True)  # (B, L, H)
                states.append(s)
            else:
                h = block(h, s)  # (B, L, H)
        h = self.norm_f(h)  # (B, L, H)
        return (h, states) if return_state else h

    def default_state(self, batch: int) -> list:
        return [block.ssm.default_state(batch) for block in self.blocks]

    def step(self, x_t, state):
        h = self.embed(x_t)  # (B, H)
        new = []
        for block, s in zip(self.blocks, state):
            h, s = block.step(h, s)  # (B, H)
            new.append(s)
        return self.norm_f(h), new


class S4TradingModel(TradingModel):
    """The SSM trading model, kind "s4", "s4d", "mamba", "s5" or "dss" (the layer of every
    block)."""

    kinds = SSM_KINDS

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.backbone = SSMBackbone(cfg)
        self.heads = TradingHeads(cfg.d_model, cfg.n_classes, cfg.horizons)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (B, L, input_dim) -> {"logits" (B, L, C), "returns" (B, L, R), "log_vol" (B, L)}
        [, state]."""
        h = self.backbone(x, state, return_state)
        if return_state:
            h, state = h
            return self.heads(h), state
        return self.heads(h)

    def default_state(self, batch: int) -> list:
        return self.backbone.default_state(batch)

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, input_dim) -> ({"logits" (B, C), "returns" (B, R), "log_vol" (B,)}, state)."""
        h, state = self.backbone.step(x_t, state)  # (B, H)
        return self.heads(h), state

    def stepper(self, backend: str = "auto", dtype=None, hidden: bool = False):
        """Per-bar numpy inference object (see :mod:`stepper`); a snapshot of the weights.
        backend: "auto" (numba if installed), "numba" or "numpy"; dtype: None = the model's;
        hidden: its outputs also carry "hidden", the vector the heads read."""
        if self.cfg.bidirectional:
            raise RuntimeError("a bidirectional model has no recurrent view")
        from .stepper import SSMStepper
        return SSMStepper(self, backend=backend, dtype=dtype, hidden=hidden)


class MultiAssetS4(TradingModel):
    """One shared SSM encoder over several assets, asset-specific heads, portfolio weights.

    x (B, L, n_assets, input_dim) -> {"logits" (B, L, A, C), "returns" (B, L, A, R),
    "log_vol" (B, L, A), "weights" (B, L, A)}. Weights are long-only with a cash option:
    softmax over [asset scores, cash score], cash dropped, so they sum to at most 1."""

    kinds = ("multi",)

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.n_assets = A = cfg.n_assets
        self.backbone = SSMBackbone(cfg)
        self.asset_heads = nn.ModuleList(TradingHeads(cfg.d_model, cfg.n_classes, cfg.horizons)
                                         for _ in range(A))
        self.score = nn.Linear(cfg.d_model, 1)
        self.asset_bias = nn.Parameter(torch.zeros(A))  # (A,)
        self.cash = nn.Parameter(torch.zeros(1))

    def _outputs(self, h):
        """h (..., A, H) -> dict with the asset axis before the head axes."""
        per = [head(h[..., a, :]) for a, head in enumerate(self.asset_heads)]
        out = {k: torch.stack([p[k] for p in per], dim=h.dim() - 2) for k in per[0]}
        s = self.score(h).squeeze(-1) + self.asset_bias  # (..., A)
        s = torch.cat([s, self.cash.expand(*s.shape[:-1], 1)], -1)  # (..., A+1)
        out["weights"] = torch.softmax(s, -1)[..., :-1]  # (..., A)
        return out

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        B, L, A, n_in = x.shape
        # (B*A, L, n_in)  assets share the encoder
        xa = x.permute(0, 2, 1, 3).reshape(B * A, L, n_in)
        h = self.backbone(xa, state, return_state)
        if return_state:
            h, state = h
        h = h.reshape(B, A, L, -1).permute(0, 2, 1, 3)  # (B, L, A, H)
        out = self._outputs(h)
        return (out, state) if return_state else out

    def default_state(self, batch: int) -> list:
        return self.backbone.default_state(batch * self.n_assets)

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, A, input_dim) -> (outputs with (B, A, ...) tensors, state)."""
        B, A, n_in = x_t.shape
        h, state = self.backbone.step(x_t.reshape(B * A, n_in), state)  # (B*A, H)
        return self._outputs(h.reshape(B, A, -1)), state
