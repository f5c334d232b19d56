"""``TickLeanPredictor``: an SSM trained on tick microstructure features, its checkpoint and
its event-by-event stream (the market maker's trend lean).

The model reads the grid features of ``features.tick`` (one row per ``grid_ms`` step) and
its ``returns`` head, times ``return_scale · slope``, is the predicted mid log return over
the next ``horizon_s`` seconds (``return_scale``: the training target's standard deviation;
``slope``: a least-squares calibration on the validation block, >= 0). ``gate`` records the
walk-forward verdict (``has_skill`` and the rule and numbers behind it); the lean is used
only where it is true.

Checkpoints are a ``torch.save`` of plain containers, loadable with
``torch.load(weights_only=True)``: ``format`` ("s4-tick-lean/1"), ``model_config``,
``state_dict``, ``tick_spec``, ``feature_names``, ``targets`` (``return_scale``, ``slope``),
``gate``, ``meta`` and ``versions``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..features.tick import TickFeatureSpec, tick_features
from ..features.tick_stream import TickFeatureStream
from .checkpoint import (
    _load_weights,
    _section,
    check_digest,
    library_versions,
    read_payload,
    write_payload,
)
from .errors import CheckpointError

FORMAT = "s4-tick-lean/1"
_REQUIRED = ("format", "model_config", "state_dict", "tick_spec", "feature_names", "targets",
             "gate")
_OPTIONAL = ("meta", "versions")


class TickLeanPredictor:
    """A trained tick model with its feature spec, output scale and skill gate.

    - ``features(events)``: grid features (L, F) of a ``load_ticks`` frame
    - ``predict_features(x)``: predicted log return over ``horizon_s`` per grid row, parallel
      (FFT) view from a zero state
    - ``predict(events)``: the same as a frame on the grid times (``pred_return`` and the
      gated ``lean``)
    - ``stream()``: a :class:`TickLeanStream` (numba stepper, no torch per event)
    """

    def __init__(self, model, spec: TickFeatureSpec, return_scale: float, slope: float = 1.0,
                 gate: dict | None = None, meta: dict | None = None):
        # float64 inference: the parallel and recurrent views then agree to ~1e-10
        self.model = model.double().eval()
        self.spec = spec
        self.return_scale, self.slope = float(return_scale), float(slope)
        self.gate = dict(gate or {"has_skill": False, "rule": "not judged"})
        self.meta = dict(meta or {})
        cfg = model.config
        if cfg.get("input_dim") != len(spec.names):
            raise CheckpointError(f"model expects {cfg.get('input_dim')} inputs, the tick spec "
                                  f"makes {len(spec.names)}")
        if list(cfg.get("horizons", ()))[:1] != [spec.horizon_steps]:
            raise CheckpointError(f"the model's first return horizon {cfg.get('horizons')} is "
                                  f"not the spec's {spec.horizon_steps} steps")
        if not (math.isfinite(self.return_scale) and self.return_scale > 0):
            raise CheckpointError(f"return_scale must be finite and > 0, got {return_scale}")
        if not (math.isfinite(self.slope) and self.slope >= 0):
            raise CheckpointError(f"slope must be finite and >= 0, got {slope}")

    @property
    def has_skill(self) -> bool:
        return bool(self.gate.get("has_skill", False))

    @property
    def horizon_s(self) -> float:
        """Seconds the predicted log return spans."""
        return self.spec.horizon_s

    @property
    def scale(self) -> float:
        """Model output -> log return over ``horizon_s``."""
        return self.return_scale * self.slope

    def __repr__(self) -> str:
        return (f"TickLeanPredictor({self.meta.get('data_name', '?')}, "
                f"{self.spec.horizon_s:g} s, has_skill={self.has_skill})")

    def features(self, events: pd.DataFrame) -> np.ndarray:
        return tick_features(events, self.spec).to_numpy()  # (L, F)

    def head(self, x: np.ndarray) -> np.ndarray:
        """The raw ``returns`` head (first horizon) for every row of ``x`` (L, F)."""
        import torch

        from .sequence import predict_sequence

        with torch.no_grad():
            xt = torch.tensor(np.asarray(x, dtype=np.float64))[None]  # (1, L, F)
            return predict_sequence(self.model, xt)["returns"][0, :, 0].numpy()  # (L,)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Predicted log return over ``horizon_s`` after each grid row of ``x`` (L, F)."""
        return self.head(x) * self.scale  # (L,)

    def predict(self, events: pd.DataFrame) -> pd.DataFrame:
        feats = tick_features(events, self.spec)
        pred = self.predict_features(feats.to_numpy())
        warm = np.arange(len(pred)) >= self.spec.warmup
        pred = np.where(warm, pred, np.nan)
        lean = pred if self.has_skill else np.where(warm, 0.0, np.nan)
        return pd.DataFrame({"pred_return": pred, "lean": lean}, index=feats.index)

    def stream(self) -> TickLeanStream:
        return TickLeanStream(self)


class TickLeanStream:
    """Events in, the latest prediction out: features per event, one stepper step per
    completed grid step (``SSMStepper``: numba, no torch).

    ``update(t_ns, bid, ask, bid_size, ask_size, mid, trade_side, volume)`` returns the
    prediction of the last completed grid step (a log return over ``horizon_s``; NaN before
    the first step closes); ``steps`` counts completed steps.
    """

    def __init__(self, predictor: TickLeanPredictor):
        self.p = predictor
        self.features = TickFeatureStream(predictor.spec)
        self.stepper = predictor.model.stepper()
        self._scale = predictor.scale
        self.pred = math.nan

    @property
    def steps(self) -> int:
        return self.features.steps

    def reset(self) -> None:
        self.features.reset()
        self.stepper.reset()
        self.pred = math.nan

    def _advance(self, rows) -> float:
        for row in rows:
            self.pred = float(self.stepper.step(row)["returns"][0]) * self._scale
        return self.pred

    def update(self, t_ns: int, bid: float, ask: float, bid_size: float, ask_size: float,
               mid: float, trade_side: float = math.nan, volume: float = 0.0) -> float:
        return self._advance(self.features.update(t_ns, bid, ask, bid_size, ask_size, mid,
                                                  trade_side, volume))

    def flush(self) -> float:
        return self._advance(self.features.flush())

    def get_state(self) -> dict:
        return {"features": self.features.get_state(), "model": self.stepper.get_state(),
                "pred": self.pred}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])
        self.stepper.set_state(state["model"])
        self.pred = state["pred"]


# -- checkpoints -------------------------------------------------------------------------
def save_tick_lean(path, predictor: TickLeanPredictor) -> Path:
    """Write a tick-lean checkpoint atomically (temporary file, then rename)."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p = predictor
    payload = {
        "format": FORMAT,
        "model_config": dict(p.model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in p.model.state_dict().items()},
        "tick_spec": p.spec.to_dict(),
        "feature_names": list(p.spec.names),
        "targets": {"return_scale": p.return_scale, "slope": p.slope},
        "gate": _plain(p.gate),
        "meta": _plain(p.meta),
        "versions": library_versions(),
    }
    return write_payload(path, payload)


def _plain(obj):
    """Numbers, strings, lists and dicts only (what ``weights_only=True`` loads)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return obj.item()
    return obj


def load_tick_lean(path, map_location="cpu") -> TickLeanPredictor:
    """Load a tick-lean checkpoint (``weights_only=True``); ``CheckpointError`` naming
    whatever is missing, unknown or inconsistent."""
    from ..ssm import model_from_config

    path = Path(path)
    payload = read_payload(path, map_location, fmt=FORMAT, what="tick-lean",
                           required=_REQUIRED, optional=_OPTIONAL)
    spec = _section(path, "tick_spec", lambda: TickFeatureSpec.from_dict(payload["tick_spec"]))
    if list(payload["feature_names"]) != spec.names:
        raise CheckpointError(f"{path}: trained on features {payload['feature_names']}, this "
                              f"version computes {spec.names}")
    model = _section(path, "model_config",
                     lambda: model_from_config(dict(payload["model_config"])))
    _load_weights(path, model, payload["state_dict"])
    t = payload["targets"]
    meta = dict(payload.get("meta") or {})
    meta["versions"] = payload.get("versions", {})
    try:
        predictor = _section(path, "targets", lambda: TickLeanPredictor(
            model, spec, float(t["return_scale"]), float(t["slope"]), dict(payload["gate"]),
            meta))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    check_digest(path, payload)
    return predictor
