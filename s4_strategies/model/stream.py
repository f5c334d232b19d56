"""``PredictorStream``: the per-bar hot path (features, normalisation, numba stepper, decode).

No torch here: one bar costs a few tens of microseconds (``scripts/bench_ssm.py``).
"""

from __future__ import annotations

import numpy as np

from feeds.errors import DataError

from ..features import FeatureStream


class PredictorStream:
    """One stream of bars through features, normalisation and the model stepper.

    ``step`` returns the same numbers as ``Predictor.decode`` on the batch outputs, through
    the same ``Decoder`` (its scalar ``decode_bar``): the per-bar hot path of the indicator's
    ``next()``. A bar with a NaN or an infinity is refused (``feeds.DataError``, from
    ``FeatureStream.update``) before the features or the model state move; ``run`` refuses
    features that are not finite.
    """

    def __init__(self, predictor, hidden: bool = False):
        """``predictor``: the :class:`~s4_strategies.model.predictor.Predictor` to stream;
        ``hidden``: keep the model's hidden state of the last bar in ``self.hidden`` (H,) (the
        row ``Predictor.states`` gives for it) and add ``"hidden"`` (L, H) to ``run``."""
        self.p = predictor
        self.features = FeatureStream(predictor.feature_spec)
        self.stepper = predictor.model.stepper(hidden=True) if hidden else \
            predictor.model.stepper()
        self.hidden = None  # the last bar's hidden state (H,), a buffer the next step replaces
        self._mean = np.asarray(predictor.normalizer.mean, dtype=np.float64)
        self._inv_std = 1.0 / np.asarray(predictor.normalizer.std, dtype=np.float64)
        self._clip = predictor.normalizer.clip
        self._z = np.empty(len(self._mean))
        self._decode_bar = predictor.decoder.decode_bar
        self._m = predictor.decoder.move_index
        self.raw = None  # the last bar's raw features (F,), a buffer the next step overwrites

    @property
    def inputs(self) -> np.ndarray:
        """The last bar's normalised features (F,), as the model saw them (a buffer the
        next step overwrites)."""
        return self._z

    def reset(self) -> None:
        self.features.reset()
        self.stepper.reset()

    def step(self, o, h, l, c, v, hour=0.0, dow=0.0) -> dict:
        z = self._z
        raw = self.raw = self.features.update(o, h, l, c, v, hour, dow)
        np.subtract(raw, self._mean, out=z)
        np.multiply(z, self._inv_std, out=z)
        np.clip(z, -self._clip, self._clip, out=z)
        z[np.isnan(z)] = 0.0
        out = self.stepper.step(z)
        self.hidden = out.get("hidden")
        r = out["returns"]
        return self._decode_bar(out["logits"].tolist(), float(r[0]), float(r[self._m]),
                                float(out["log_vol"]))

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Normalised features ``x`` (L, F) of consecutive bars through the model's recurrent
        view from its current state, in one compiled loop (the indicator's ``once()``)."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            bad = np.argwhere(~np.isfinite(x))[0]
            raise DataError(f"PredictorStream.run: features must be finite; row {bad[0]}, "
                            f"column {bad[-1]} holds {x[tuple(bad)]!r} (normalised features "
                            "of the warm-up are 0, not NaN); nothing was updated")
        out = self.stepper.run(x)
        dec = self.p.decode(out["logits"], out["returns"], out["log_vol"])
        if "hidden" in out:
            dec["hidden"] = out["hidden"]
        return dec

    def get_state(self) -> dict:
        return {"features": self.features.get_state(), "model": self.stepper.get_state()}

    def set_state(self, state: dict) -> None:
        self.features.set_state(state["features"])
        self.stepper.set_state(state["model"])
