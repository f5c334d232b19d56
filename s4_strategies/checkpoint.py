"""Checkpoints: everything needed to rebuild a trained model and its features.

A checkpoint is a ``torch.save`` of plain containers (no pickled classes), so it loads with
``torch.load(..., weights_only=True)``:

- ``format``: ``"s4-trading/1"``
- ``model_config``: the model's ``config`` (with ``kind``) and ``state_dict``: its weights
- ``feature_spec``, ``feature_names``, ``normalizer``: the causal features and the
  standardisation fitted on the training period
- ``label_spec`` and ``targets``: how outputs map back to returns and volatility
- ``data``: dataset name, bar spacing, train/validation periods; ``versions``; ``metrics``

``load_model(path)`` returns a :class:`Predictor`, the object the indicator, the strategies
and the comparison use.
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .features import (
    FeatureSpec,
    FeatureStream,
    LabelSpec,
    Normalizer,
    bar_spacing,
    make_features,
    signal_values,
)

FORMAT = "s4-trading/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: wrong format, or not matching the data."""


def library_versions() -> dict:
    import backtrader
    import torch

    import s4_strategies

    return {
        "s4_strategies": s4_strategies.__version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "backtrader": getattr(backtrader, "__version__", "?"),
        "python": platform.python_version(),
    }


@dataclass
class Targets:
    """Scales the training targets were standardised with."""

    return_scale: list[float] = field(default_factory=list)
    vol_mean: float = 0.0
    vol_std: float = 1.0

    def to_dict(self) -> dict:
        return {"return_scale": list(self.return_scale), "vol_mean": self.vol_mean,
                "vol_std": self.vol_std}

    @classmethod
    def from_dict(cls, d: dict) -> Targets:
        return cls(list(d["return_scale"]), float(d["vol_mean"]), float(d["vol_std"]))


class Predictor:
    """A trained model with its features: the unit that trades.

    - ``predict(df)``: batch (parallel) forward over a frame of bars, decoded to a DataFrame
      with ``signal``, ``confidence``, ``pred_return``, ``pred_vol`` and the class probabilities.
    - ``stream()``: a per-bar object (features + model stepper, no torch) for ``next()``.
    """

    def __init__(self, model, feature_spec: FeatureSpec, normalizer: Normalizer,
                 label_spec: LabelSpec, targets: Targets, meta: dict | None = None):
        # Inference in float64: the parallel (FFT) and recurrent views then agree to ~1e-10,
        # so a backtest in runonce mode and a live feed give the same lines.
        self.model = model.double().eval()
        self.feature_spec = feature_spec
        self.normalizer = normalizer
        self.label_spec = label_spec
        self.targets = targets
        self.meta = dict(meta or {})
        names = feature_spec.names
        input_dim = model.config.get("input_dim")
        if input_dim is not None and input_dim != len(names):
            raise CheckpointError(
                f"model expects {input_dim} inputs but the feature spec makes {len(names)}"
            )
        if len(normalizer.mean) != len(names):
            raise CheckpointError(
                f"normalisation has {len(normalizer.mean)} features, spec has {len(names)}"
            )
        self.classes = signal_values(label_spec.n_classes)

    # -- data checks -------------------------------------------------------------------
    def check_data(self, df: pd.DataFrame, strict: bool = True) -> None:
        """Raise ``CheckpointError`` when ``df`` cannot feed this model's features."""
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
        if missing:
            raise CheckpointError(f"data lacks columns {missing} that the features need")
        spacing = self.meta.get("bar_spacing_s")
        if strict and spacing and len(df) > 2:
            have = bar_spacing(df.index).total_seconds()
            if not math.isclose(have, spacing, rel_tol=0.01):
                raise CheckpointError(
                    f"the model was trained on bars {spacing:g} s apart "
                    f"({self.meta.get('data_name', '?')}), this data has bars {have:g} s apart; "
                    "its features would not mean what they meant in training "
                    "(pass strict=False to override)"
                )

    def features(self, df: pd.DataFrame, strict: bool = True) -> np.ndarray:
        """Normalised features of every bar (NaN rows during warm-up are zeroed)."""
        self.check_data(df, strict=strict)
        z = self.normalizer.transform(make_features(df, self.feature_spec).to_numpy())
        return np.nan_to_num(z, nan=0.0)

    # -- decoding ----------------------------------------------------------------------
    def decode(self, logits, returns, log_vol) -> dict[str, np.ndarray]:
        """Raw head outputs (numpy, last axis = head) to trading quantities."""
        logits = np.asarray(logits, dtype=np.float64)
        z = logits - logits.max(axis=-1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=-1, keepdims=True)
        cls = p.argmax(axis=-1)
        ret = np.asarray(returns, dtype=np.float64)[..., 0] * self.targets.return_scale[0]
        vol = np.exp(np.asarray(log_vol, dtype=np.float64) * self.targets.vol_std
                     + self.targets.vol_mean)
        return {
            "signal": self.classes[cls],
            "confidence": np.take_along_axis(p, cls[..., None], axis=-1)[..., 0],
            "expected_signal": p @ self.classes,
            "pred_return": ret,
            "pred_vol": vol,
            "probs": p,
        }

    def predict(self, df: pd.DataFrame, strict: bool = True) -> pd.DataFrame:
        """Batch forward over every bar of ``df`` (from a zero state at its first bar)."""
        x = self.features(df, strict=strict)
        out = self.forward_array(x)
        frame = {k: v for k, v in out.items() if k != "probs"}
        for i in range(out["probs"].shape[-1]):
            frame[f"p{i}"] = out["probs"][:, i]
        return pd.DataFrame(frame, index=df.index)

    def forward_array(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Batch forward over normalised features ``x`` (L, F)."""
        import torch

        from .inference import predict_sequence

        with torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            raw = predict_sequence(self.model, torch.as_tensor(x, dtype=dtype)[None])
        return self.decode(raw["logits"][0].numpy(), raw["returns"][0].numpy(),
                           raw["log_vol"][0].numpy())

    def stream(self) -> PredictorStream:
        return PredictorStream(self)


class PredictorStream:
    """One stream of bars through features, normalisation and the model stepper.

    ``step`` returns the same numbers as ``Predictor.decode`` on the batch outputs, computed
    with scalar arithmetic: this is the per-bar hot path of the indicator's ``next()``.
    """

    def __init__(self, predictor: Predictor):
        self.p = predictor
        self.features = FeatureStream(predictor.feature_spec)
        self.stepper = predictor.model.stepper()
        self._mean = np.asarray(predictor.normalizer.mean, dtype=np.float64)
        self._inv_std = 1.0 / np.asarray(predictor.normalizer.std, dtype=np.float64)
        self._clip = predictor.normalizer.clip
        self._z = np.empty(len(self._mean))
        self._classes = [float(c) for c in predictor.classes]
        self._ret_scale = float(predictor.targets.return_scale[0])
        self._vol_mean = float(predictor.targets.vol_mean)
        self._vol_std = float(predictor.targets.vol_std)

    def reset(self) -> None:
        self.features.reset()
        self.stepper.reset()

    def step(self, o, h, l, c, v, hour=0.0, dow=0.0) -> dict:
        z = self._z
        raw = self.features.update(o, h, l, c, v, hour, dow)
        np.subtract(raw, self._mean, out=z)
        np.multiply(z, self._inv_std, out=z)
        np.clip(z, -self._clip, self._clip, out=z)
        z[np.isnan(z)] = 0.0
        out = self.stepper.step(z)
        logits = out["logits"].tolist()
        top = max(logits)
        exps = [math.exp(x - top) for x in logits]
        total = sum(exps)
        k = logits.index(top)
        classes = self._classes
        return {
            "signal": classes[k],
            "confidence": exps[k] / total,
            "expected_signal": sum(e * cl for e, cl in zip(exps, classes)) / total,
            "pred_return": float(out["returns"][0]) * self._ret_scale,
            "pred_vol": math.exp(float(out["log_vol"]) * self._vol_std + self._vol_mean),
        }

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised features ``x`` (L, F) of consecutive bars through the model's recurrent
        view from its current state, in one compiled loop (the indicator's ``once()``)."""
        out = self.stepper.run(x)
        return self.p.decode(out["logits"], out["returns"], out["log_vol"])

    def get_state(self) -> dict:
        return {"features": self.features.get_state(), "model": self.stepper.get_state()}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])
        self.stepper.set_state(state["model"])


# -- save / load -----------------------------------------------------------------------
def save_model(path, model, feature_spec: FeatureSpec, normalizer: Normalizer,
               label_spec: LabelSpec, targets: Targets, meta: dict | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model_config": dict(model.config),
        "state_dict": {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()},
        "feature_spec": feature_spec.to_dict(),
        "feature_names": list(feature_spec.names),
        "normalizer": normalizer.to_dict(),
        "label_spec": label_spec.to_dict(),
        "targets": targets.to_dict(),
        "meta": dict(meta or {}),
        "versions": library_versions(),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_model(path, map_location="cpu") -> Predictor:
    """Load a checkpoint (``weights_only=True``) and rebuild the model and its features."""
    import torch

    from .ssm import model_from_config

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same to users
        raise CheckpointError(f"{path} is not a loadable s4-trading checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an s4-trading checkpoint (format {FORMAT})")
    spec = FeatureSpec.from_dict(payload["feature_spec"])
    if list(payload["feature_names"]) != spec.names:
        raise CheckpointError(
            f"{path}: the features it was trained on {payload['feature_names']} are not what "
            f"this version computes from its spec {spec.names}"
        )
    model = model_from_config(dict(payload["model_config"]))
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the model config: {exc}") from exc
    meta = dict(payload.get("meta", {}))
    meta["versions"] = payload.get("versions", {})
    return Predictor(
        model,
        spec,
        Normalizer.from_dict(payload["normalizer"]),
        LabelSpec.from_dict(payload["label_spec"]),
        Targets.from_dict(payload["targets"]),
        meta,
    )
