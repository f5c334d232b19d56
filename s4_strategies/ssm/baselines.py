"""Baselines with the trading-model interface: LSTM, GRU and a causal Transformer.

Built from the same :class:`ModelConfig` as :class:`S4TradingModel` (its input_dim,
d_model, n_layers, dropout, n_classes, horizons; n_heads and window for the Transformer),
same outputs, same forward / default_state / step / stepper / config contract.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .model import TradingHeads, TradingModel


class _RNNModel(TradingModel):
    rnn_cls: type = nn.LSTM

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        H = self.d_model = cfg.d_model
        self.n_layers = cfg.n_layers
        self.embed = nn.Linear(cfg.input_dim, H)
        self.rnn = self.rnn_cls(H, H, cfg.n_layers, batch_first=True,
                                dropout=cfg.dropout if cfg.n_layers > 1 else 0.0)
        self.norm_f = nn.LayerNorm(H)
        self.heads = TradingHeads(H, cfg.n_classes, cfg.horizons)

    def default_state(self, batch: int):
        p = self.embed.weight
        h = p.new_zeros(self.n_layers, batch, self.d_model)  # (n_layers, B, H)
        return (h, h.clone()) if self.rnn_cls is nn.LSTM else h

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (B, L, input_dim) -> outputs (B, L, ...) [, state]."""
        h, state = self.rnn(self.embed(x), state)  # (B, L, H)
        out = self.heads(self.norm_f(h))
        return (out, state) if return_state else out

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, input_dim) -> (outputs (B, ...), state)."""
        out, state = self.forward(x_t.unsqueeze(1), state, return_state=True)
        return {k: v[:, 0] for k, v in out.items()}, state


class LSTMModel(_RNNModel):
    kinds, rnn_cls = ("lstm",), nn.LSTM


class GRUModel(_RNNModel):
    kinds, rnn_cls = ("gru",), nn.GRU


def sinusoidal(pos: torch.Tensor, d: int) -> torch.Tensor:
    """Absolute sinusoidal position encoding. pos (L,) -> (L, d)."""
    i = torch.arange(0, d, 2, device=pos.device, dtype=torch.float64)  # (d/2,)
    ang = pos.to(torch.float64).unsqueeze(-1) * torch.exp(-math.log(10000.0) * i / d)  # (L, d/2)
    return torch.stack([ang.sin(), ang.cos()], -1).flatten(-2)[:, :d]  # (L, d)


class _Block(nn.Module):
    """Pre-norm Transformer block with a KV cache. x (B, L, H)."""

    def __init__(self, d_model: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(),
                                 nn.Linear(4 * d_model, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, cache, mask):
        """cache (k, v) each (B, heads, T, dh); mask None (plain causal) or (L, T+L) bool."""
        B, L, H = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)  # (B, heads, T+L, dh)
        # no dropout on the attention weights (residual dropout only), so training can use
        # the fused flash kernel instead of materialising the (L, L) attention matrix
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           is_causal=mask is None)  # (B, heads, L, dh)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(B, L, H)))
        return x + self.drop(self.mlp(self.norm2(x))), (k, v)


class TransformerModel(TradingModel):
    """Causal Transformer. ``window``: attend to at most this many past bars (None: all).
    State: (position, [(k, v) per layer]); the KV cache keeps the last ``window`` bars."""

    kinds = ("transformer",)

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        H = self.d_model = cfg.d_model
        self.n_heads, self.window = cfg.n_heads, cfg.window
        self.embed = nn.Linear(cfg.input_dim, H)
        self.blocks = nn.ModuleList(_Block(H, cfg.n_heads, cfg.dropout)
                                    for _ in range(cfg.n_layers))
        self.norm_f = nn.LayerNorm(H)
        self.heads = TradingHeads(H, cfg.n_classes, cfg.horizons)

    def default_state(self, batch: int):
        p = self.embed.weight
        empty = p.new_zeros(batch, self.n_heads, 0, self.d_model // self.n_heads)
        return (0, [(empty, empty) for _ in self.blocks])

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (B, L, input_dim) -> outputs (B, L, ...) [, state]."""
        B, L, _ = x.shape
        pos0, caches = self.default_state(B) if state is None else state
        T = caches[0][0].shape[2]  # cached bars
        pos = torch.arange(pos0, pos0 + L, device=x.device)  # (L,)
        h = self.embed(x) + sinusoidal(pos, self.d_model).to(x.dtype)  # (B, L, H)
        mask = None
        if T > 0 or self.window is not None:
            kpos = torch.arange(pos0 - T, pos0 + L, device=x.device)  # (T+L,)
            lag = pos.unsqueeze(-1) - kpos  # (L, T+L)
            mask = (lag >= 0) & (lag < (self.window or L + T + 1))  # (L, T+L)
        new = []
        for block, cache in zip(self.blocks, caches):
            h, (k, v) = block(h, cache, mask)  # (B, L, H)
            if self.window is not None:
                k, v = k[:, :, -self.window:], v[:, :, -self.window:]
            new.append((k, v))
        out = self.heads(self.norm_f(h))
        return (out, (pos0 + L, new)) if return_state else out

    def step(self, x_t: torch.Tensor, state):
        """x_t (B, input_dim) -> (outputs (B, ...), state)."""
        out, state = self.forward(x_t.unsqueeze(1), state, return_state=True)
        return {k: v[:, 0] for k, v in out.items()}, state
