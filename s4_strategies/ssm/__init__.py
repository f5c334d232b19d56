"""State space core: HiPPO, S4, S4D, S5, DSS, a selective SSM, the trading model, its stepper.

    from s4_strategies.ssm import build_model
    model = build_model("s4", input_dim=16)                # d_model 64, d_state 64, 4 layers
    out = model(x)                                         # x (B, L, 16) -> dict per time step
    out, state = model(history, return_state=True)         # consume a history in parallel ...
    out_t, state = model.step(x_t, state)                  # ... and go on bar by bar
    stepper = model.stepper()                              # numpy/numba per-bar inference
    model2 = model_from_config(model.config)               # rebuild from the JSON config
    model.cfg                                              # the ModelConfig behind it
"""

from __future__ import annotations

from .base import SequenceLayer
from .baselines import GRUModel, LSTMModel, TransformerModel
from .config import KINDS, ModelConfig
from .dss import DSSLayer
from .hippo import (
    discretize_bilinear,
    discretize_zoh,
    dplr_init,
    hippo_legs,
    init_log_dt,
    nplr_legs,
    s4d_init,
)
from .model import MultiAssetS4, S4TradingModel, TradingHeads, TradingModel, make_ssm
from .s4 import S4Layer
from .s4d import S4DLayer
from .s5 import S5Layer, associative_scan, s5_init
from .scan import (
    selective_scan_chunked,
    selective_scan_compiled,
    selective_scan_recompute,
    selective_scan_ref,
)
from .selective import MambaConfig, SelectiveSSM
from .stepper import SSMStepper, TorchStepper

MODELS: dict[str, type[TradingModel]] = {
    "s4": S4TradingModel, "s4d": S4TradingModel, "mamba": S4TradingModel, "s5": S4TradingModel,
    "dss": S4TradingModel, "lstm": LSTMModel, "gru": GRUModel, "transformer": TransformerModel,
    "multi": MultiAssetS4,
}


def build_model(kind: str, input_dim: int, **config) -> TradingModel:
    """A trading model of the given kind; every kind has the S4TradingModel interface.

    kind: "s4", "s4d", "mamba", "s5", "dss" (S4TradingModel with that layer), "lstm", "gru",
    "transformer", or "multi" (MultiAssetS4, needs n_assets). config: any
    :class:`ModelConfig` fields; those the kind does not use are ignored."""
    return model_from_config({"kind": kind, "input_dim": input_dim, **config})


def model_from_config(config: dict | ModelConfig) -> TradingModel:
    """Rebuild a model from ``model.config`` (a JSON dict including "kind") or a ModelConfig."""
    cfg = config if isinstance(config, ModelConfig) else ModelConfig.from_dict(config)
    return MODELS[cfg.kind](cfg)


__all__ = [
    "KINDS", "ModelConfig", "build_model", "model_from_config",
    "hippo_legs", "nplr_legs", "s4d_init", "dplr_init", "init_log_dt",
    "discretize_zoh", "discretize_bilinear",
    "SequenceLayer", "S4Layer", "S4DLayer", "S5Layer", "DSSLayer", "SelectiveSSM", "MambaConfig",
    "s5_init", "associative_scan",
    "selective_scan_ref", "selective_scan_chunked", "selective_scan_recompute",
    "selective_scan_compiled",
    "S4TradingModel", "MultiAssetS4", "TradingHeads", "make_ssm",
    "LSTMModel", "GRUModel", "TransformerModel",
    "SSMStepper", "TorchStepper",
]
