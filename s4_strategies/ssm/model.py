"""The trading model: embedding, n_layers residual SSM blocks, heads at every time step.

    x (B, L, input_dim) -> Linear -> n_layers x [h + GLU(W drop(gelu(SSM(LayerNorm(h)))))]
                        -> LayerNorm -> heads:
        "logits"  (B, L, n_classes)      sell/hold/buy (3) or strong sell .. strong buy (5)
        "returns" (B, L, len(horizons))  forward returns at each horizon (e.g. 1, 5, 20 bars)
        "log_vol" (B, L)                 log of the next period's realised volatility

Every trading model here (SSM or baseline) has the same interface:

    forward(x, state=None, return_state=False) -> outputs [, state]
    default_state(batch);  step(x_t, state) -> (outputs_t, state)   x_t (B, input_dim)
    stepper() -> per-bar numpy inference object;  config -> JSON dict with "kind"
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .s4 import S4Layer
from .s4d import S4DLayer
from .selective import MambaConfig, SelectiveSSM

SSM_KINDS = ("s4", "s4d", "mamba")


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
    """Base: the config contract and the default (torch-backed) stepper."""

    kind: str = ""

    def _store_config(self, **config) -> None:
        config["horizons"] = [int(h) for h in config["horizons"]]
        self.config = {"kind": self.kind, **config}

    def stepper(self, **kwargs):
        from .stepper import TorchStepper
        return TorchStepper(self, **kwargs)


def make_ssm(layer: str, d_model: int, d_state: int, init: str | None = None, learn_dt: bool = True,
             bidirectional: bool = False, dt_min: float = 1e-3, dt_max: float = 1e-1,
             disc: str = "zoh", d_conv: int = 4, expand: int = 2, dt_rank: int | None = None,
             scan: str = "auto", chunk_size: int | None = None):
    """One SSM sequence layer of the given kind (init None: the layer's own default)."""
    common = dict(learn_dt=learn_dt, bidirectional=bidirectional, dt_min=dt_min, dt_max=dt_max)
    if layer == "s4":
        return S4Layer(d_model, d_state, init=init or "legs", **common)
    if layer == "s4d":
        return S4DLayer(d_model, d_state, init=init or "legs", disc=disc, **common)
    if layer == "mamba":
        return SelectiveSSM(MambaConfig(d_model, d_state, d_conv, expand, dt_rank, init=init or "real",
                                        scan=scan, chunk_size=chunk_size, **common))
    raise ValueError(f"layer must be one of {SSM_KINDS}, got {layer!r}")


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

    def __init__(self, input_dim: int, d_model: int, d_state: int, n_layers: int, layer: str,
                 dropout: float, **ssm_options):
        super().__init__()
        self.embed = nn.Linear(input_dim, d_model)
        self.blocks = nn.ModuleList(
            SSMBlock(d_model, make_ssm(layer, d_model, d_state, **ssm_options), dropout)
            for _ in range(n_layers))
        self.norm_f = nn.LayerNorm(d_model)

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
    def __init__(self, input_dim: int, d_model: int = 64, d_state: int = 64, n_layers: int = 4,
                 layer: str = "s4", dropout: float = 0.1, n_classes: int = 3,
                 horizons=(1, 5, 20), init: str | None = None, learn_dt: bool = True,
                 bidirectional: bool = False, dt_min: float = 1e-3, dt_max: float = 1e-1,
                 disc: str = "zoh", d_conv: int = 4, expand: int = 2, dt_rank: int | None = None,
                 scan: str = "auto", chunk_size: int | None = None, kind: str | None = None):
        super().__init__()
        layer = kind or layer
        self.kind = layer
        opts = dict(init=init, learn_dt=learn_dt, bidirectional=bidirectional, dt_min=dt_min,
                    dt_max=dt_max, disc=disc, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
                    scan=scan, chunk_size=chunk_size)
        self._store_config(input_dim=input_dim, d_model=d_model, d_state=d_state,
                           n_layers=n_layers, layer=layer, dropout=dropout, n_classes=n_classes,
                           horizons=tuple(horizons), **opts)
        self.backbone = SSMBackbone(input_dim, d_model, d_state, n_layers, layer, dropout, **opts)
        self.heads = TradingHeads(d_model, n_classes, horizons)

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

    def stepper(self, backend: str = "auto", dtype=None):
        """Per-bar numpy inference object (see :mod:`stepper`); a snapshot of the weights.
        backend: "auto" (numba if installed), "numba" or "numpy"; dtype: None = the model's."""
        if self.config["bidirectional"]:
            raise RuntimeError("a bidirectional model has no recurrent view")
        from .stepper import SSMStepper
        return SSMStepper(self, backend=backend, dtype=dtype)


class MultiAssetS4(TradingModel):
    """One shared SSM encoder over several assets, asset-specific heads, portfolio weights.

    x (B, L, n_assets, input_dim) -> {"logits" (B, L, A, C), "returns" (B, L, A, R),
    "log_vol" (B, L, A), "weights" (B, L, A)}. Weights are long-only with a cash option:
    softmax over [asset scores, cash score], cash dropped, so they sum to at most 1."""

    kind = "multi"

    def __init__(self, input_dim: int, n_assets: int, d_model: int = 64, d_state: int = 64,
                 n_layers: int = 4, layer: str = "s4", dropout: float = 0.1, n_classes: int = 3,
                 horizons=(1, 5, 20), kind: str | None = None, **ssm_options):
        super().__init__()
        self._store_config(input_dim=input_dim, n_assets=n_assets, d_model=d_model,
                           d_state=d_state, n_layers=n_layers, layer=layer, dropout=dropout,
                           n_classes=n_classes, horizons=tuple(horizons), **ssm_options)
        self.n_assets = n_assets
        self.backbone = SSMBackbone(input_dim, d_model, d_state, n_layers, layer, dropout,
                                    **ssm_options)
        self.asset_heads = nn.ModuleList(TradingHeads(d_model, n_classes, horizons)
                                         for _ in range(n_assets))
        self.score = nn.Linear(d_model, 1)
        self.asset_bias = nn.Parameter(torch.zeros(n_assets))
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
        xa = x.permute(0, 2, 1, 3).reshape(B * A, L, n_in)  # (B*A, L, n_in)  assets share the encoder
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
