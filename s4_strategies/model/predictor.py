"""``Predictor``: a trained model with its features, normalisation and decoding.

``decode`` is the one map from raw head outputs (logits, standardised returns, log
volatility) to trading quantities; the per-bar :class:`~s4_strategies.model.stream.PredictorStream`
computes the same numbers with scalar arithmetic and a test holds the two equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..features import FeatureSpec, LabelSpec, Normalizer, bar_spacing, make_features
from .decode import Decoder
from .errors import CheckpointError
from .guards import SpacingWatch, check_bars
from .stream import PredictorStream


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


def _require(what: str, values, names, positive: bool = True) -> None:
    """CheckpointError naming the entries of ``values`` that are not finite (and > 0)."""
    bad = {n: v for n, v in zip(names, values)
           if not (math.isfinite(v) and (v > 0 or not positive))}
    if bad:
        need = "finite and positive" if positive else "finite"
        raise CheckpointError(f"{what} must be {need}; it has {bad}")


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
        self._check_consistency()
        hs = list(label_spec.horizons)
        if label_spec.signal_horizon not in hs:  # the move would be read off another output
            raise CheckpointError(f"label_spec.signal_horizon {label_spec.signal_horizon} is "
                                  f"not one of its horizons {tuple(hs)}")
        m = hs.index(label_spec.signal_horizon)
        self.decoder = Decoder(label_spec.n_classes, targets.return_scale[0], targets.vol_mean,
                               targets.vol_std, move_index=m,
                               move_scale=targets.return_scale[m])
        self.classes = self.decoder.classes

    def _check_consistency(self) -> None:
        """Heads, label spec, targets and normalisation that fit together, or CheckpointError."""
        from ..ssm.model import TradingHeads

        ls, t = self.label_spec, self.targets
        for m in self.model.modules():
            if not isinstance(m, TradingHeads):
                continue
            if m.logits.out_features != ls.n_classes:
                raise CheckpointError(
                    f"the model's head gives {m.logits.out_features} class logits but "
                    f"label_spec.n_classes = {ls.n_classes}: its signals would be misread")
            if m.returns.out_features != len(ls.horizons):
                raise CheckpointError(
                    f"the model's head gives {m.returns.out_features} return outputs but the "
                    f"label horizons {ls.horizons} are {len(ls.horizons)}")
        if len(t.return_scale) != len(ls.horizons):
            raise CheckpointError(f"targets give {len(t.return_scale)} return scales for "
                                  f"{len(ls.horizons)} horizons {ls.horizons}")
        names = self.feature_spec.names
        _require("normalizer.mean", self.normalizer.mean, names, positive=False)
        _require("normalizer.std", self.normalizer.std, names)
        _require("normalizer.clip", [self.normalizer.clip], ["clip"])
        _require("targets.return_scale", t.return_scale, [f"h{h}" for h in ls.horizons])
        _require("targets.vol_mean", [t.vol_mean], ["vol_mean"], positive=False)
        _require("targets.vol_std", [t.vol_std], ["vol_std"])

    @property
    def name(self) -> str:
        """A short label: the model kind and the data it was trained on
        (``s4d bybit:BTCUSDT:60``)."""
        kind = self.model.config.get("kind", type(self.model).__name__)
        data = self.meta.get("data_name")
        return f"{kind} {data}" if data else str(kind)

    def __repr__(self) -> str:
        return f"Predictor({self.name})"

    # -- data checks -------------------------------------------------------------------
    def check_data(self, df: pd.DataFrame, strict: bool = True) -> None:
        """Raise ``CheckpointError`` when ``df`` cannot feed this model's features (columns,
        bar spacing unless ``strict=False``) and ``feeds.DataError`` naming the first bar whose
        prices are not finite and positive or whose volume is not finite and non-negative."""
        missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
        if missing:
            raise CheckpointError(f"data lacks columns {missing} that the features need")
        if strict and len(df) > 2:
            self.check_spacing(bar_spacing(df.index).total_seconds())
        check_bars(df)

    def check_spacing(self, seconds: float) -> None:
        """Raise ``CheckpointError`` unless bars ``seconds`` apart are what the model was
        trained on (``meta["bar_spacing_s"]``, within 1 %; no check without it)."""
        spacing = self.meta.get("bar_spacing_s")
        if spacing and not math.isclose(seconds, spacing, rel_tol=0.01):
            raise CheckpointError(
                f"the model was trained on bars {spacing:g} s apart "
                f"({self.meta.get('data_name', '?')}), this data has bars {seconds:g} s apart; "
                "its features would not mean what they meant in training (to use it all the "
                "same: S4Indicator(strict=False); s4trade backtest: --params "
                "'{\"indicator\": {\"strict\": false}}')"
            )

    def spacing_watch(self, strict: bool = True) -> SpacingWatch:
        """A :class:`SpacingWatch`: the spacing check for bars that arrive one at a time."""
        return SpacingWatch(self, strict)

    def features(self, df: pd.DataFrame, strict: bool = True) -> np.ndarray:
        """Normalised features of every bar (NaN rows during warm-up are zeroed)."""
        self.check_data(df, strict=strict)
        z = self.normalizer.transform(make_features(df, self.feature_spec).to_numpy())
        return np.nan_to_num(z, nan=0.0)

    # -- decoding ----------------------------------------------------------------------
    def decode(self, logits, returns, log_vol) -> dict[str, np.ndarray]:
        """Raw head outputs (numpy, last axis = head) to trading quantities (``Decoder``)."""
        return self.decoder.decode(logits, returns, log_vol)

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

        from .sequence import predict_sequence

        with torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            raw = predict_sequence(self.model, torch.as_tensor(x, dtype=dtype)[None])
        return self.decode(raw["logits"][0].numpy(), raw["returns"][0].numpy(),
                           raw["log_vol"][0].numpy())

    def forecasts(self, df: pd.DataFrame, strict: bool = True) -> dict[str, np.ndarray]:
        """Every head in the units of its target, for every bar of ``df`` (a zero state at its
        first bar): ``probs`` (L, C), ``returns`` (L, n_horizons) forward log returns at
        ``label_spec.horizons``, ``log_vol`` (L,) log realised volatility per bar."""
        import torch

        from .sequence import predict_sequence

        x = self.features(df, strict=strict)
        with torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            raw = predict_sequence(self.model, torch.as_tensor(x, dtype=dtype)[None])
        logits = raw["logits"][0].double().numpy()  # (L, C)
        z = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (L, C)
        t = self.targets
        return {
            "probs": z / z.sum(axis=-1, keepdims=True),  # (L, C)
            "returns": raw["returns"][0].double().numpy() * np.asarray(t.return_scale),  # (L, R)
            "log_vol": raw["log_vol"][0].double().numpy() * t.vol_std + t.vol_mean,  # (L,)
        }

    def states(self, df: pd.DataFrame, strict: bool = True) -> pd.DataFrame:
        """The model's hidden state at every bar of ``df`` (a zero state at its first bar):
        the vector of ``d_model`` numbers every head reads (the backbone's final normalised
        output; the stream's ``hidden`` after each bar), columns ``h0`` .. ``h{H-1}``. Causal:
        the row of bar t depends on bars <= t only."""
        import torch

        from .sequence import predict_sequence

        x = self.features(df, strict=strict)
        with torch.no_grad():
            dtype = next(self.model.parameters()).dtype
            raw = predict_sequence(self.model, torch.as_tensor(x, dtype=dtype)[None],
                                   hidden=True)
        h = raw["hidden"][0].double().numpy()  # (L, H)
        return pd.DataFrame(h, index=df.index, columns=[f"h{i}" for i in range(h.shape[1])])

    def stream(self, hidden: bool = False) -> PredictorStream:
        """A per-bar :class:`~s4_strategies.model.stream.PredictorStream` from a zero state;
        ``hidden``: it also keeps the hidden state of each bar (``stream.hidden``)."""
        return PredictorStream(self, hidden=hidden)
