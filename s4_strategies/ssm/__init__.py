"""State space core: HiPPO, S4, S4D, a selective SSM, the trading model and its stepper.

    from s4_strategies.ssm import build_model
    model = build_model("s4", input_dim=16)                # d_model 64, d_state 64, 4 layers
    out = model(x)                                         # x (B, L, 16) -> dict per time step
    out, state = model(history, return_state=True)         # consume a history in parallel ...
    out_t, state = model.step(x_t, state)                  # ... and go on bar by bar
    stepper = model.stepper()                              # numpy/numba per-bar inference
    model2 = model_from_config(model.config)               # rebuild from the JSON config
"""

from __future__ import annotations

from .base import SequenceLayer
from .baselines import GRUModel, LSTMModel, TransformerModel
from .hippo import (
    discretize_bilinear,
    discretize_zoh,
    dplr_init,
    hippo_legs,
    init_log_dt,
    nplr_legs,
    s4d_init,
)
from .model import MultiAssetS4, S4TradingModel, TradingHeads, make_ssm
from .s4 import S4Layer
from .s4d import S4DLayer
from .scan import selective_scan_chunked, selective_scan_recompute, selective_scan_ref
from .selective import MambaConfig, SelectiveSSM
from .stepper import SSMStepper, TorchStepper

KINDS = ("s4", "s4d", "mamba", "lstm", "gru", "transformer")


def build_model(kind: str, input_dim: int, **config):
    """A trading model of the given kind; every kind has the S4TradingModel interface.

    kind: "s4", "s4d", "mamba" (S4TradingModel with that layer), "lstm", "gru",
    "transformer", or "multi" (MultiAssetS4, needs n_assets)."""
    if kind in ("s4", "s4d", "mamba"):
        config.pop("layer", None)
        return S4TradingModel(input_dim, layer=kind, **config)
    if kind == "lstm":
        return LSTMModel(input_dim, **config)
    if kind == "gru":
        return GRUModel(input_dim, **config)
    if kind == "transformer":
        return TransformerModel(input_dim, **config)
    if kind == "multi":
        return MultiAssetS4(input_dim, **config)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS} or 'multi'")


def model_from_config(config: dict):
    """Rebuild a model from ``model.config`` (a JSON dict including "kind")."""
    return build_model(**dict(config))


__all__ = [
    "KINDS", "build_model", "model_from_config",
    "hippo_legs", "nplr_legs", "s4d_init", "dplr_init", "init_log_dt",
    "discretize_zoh", "discretize_bilinear",
    "SequenceLayer", "S4Layer", "S4DLayer", "SelectiveSSM", "MambaConfig",
    "selective_scan_ref", "selective_scan_chunked", "selective_scan_recompute",
    "S4TradingModel", "MultiAssetS4", "TradingHeads", "make_ssm",
    "LSTMModel", "GRUModel", "TransformerModel",
    "SSMStepper", "TorchStepper",
]
