"""``RegimeIndicator``: the market regime read from the model's hidden state, bar by bar.

An :class:`~s4_strategies.indicators.S4Indicator` (all its lines, params, resets and
restarts) that also labels every bar with a fitted
:class:`~s4_strategies.model.regimes.RegimeModel` (``training.regimes.fit_regimes``):

    regimes = fit_regimes(predictor, df)          # on the predictor's training period
    regimes.save("runs/regimes.json")

    class StandAside(bt.Strategy):
        def __init__(self):
            self.reg = RegimeIndicator(self.data, model=predictor, regimes="runs/regimes.json")
        def next(self):
            if self.reg.regime[0] == 2:            # the most turbulent regime: stay out
                self.order_target_percent(target=0.0)
            elif self.reg.signal[0] > 0: ...

Lines (besides S4Indicator's): ``regime`` (the most probable regime, 0 = calmest on the
training period), ``regime_prob`` (its probability), ``p0`` .. ``p5`` (each regime's
probability; NaN past the model's K). The probabilities are the regime model's causal filter
over the bars since the warm-up ended (or the last state reset): a bar's label uses bars up to
it only, in ``next()`` and ``once()`` alike (tests hold them equal).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..model.regimes import RegimeFilter, RegimeModel
from .s4 import S4Indicator

MAX_REGIMES = 6
_PROBS = tuple(f"p{k}" for k in range(MAX_REGIMES))
_LINES = ("regime", "regime_prob", *_PROBS)


def _as_regimes(regimes) -> RegimeModel:
    if isinstance(regimes, RegimeModel):
        return regimes
    if isinstance(regimes, (str, Path)):
        return RegimeModel.load(regimes)
    raise ValueError("RegimeIndicator needs regimes= (a RegimeModel from "
                     "training.regimes.fit_regimes, or the path of one it saved)")


class RegimeIndicator(S4Indicator):
    """S4Indicator plus the regime lines; params: those of S4Indicator and ``regimes`` (a
    :class:`RegimeModel` or the path of its JSON)."""

    lines = _LINES
    params = dict(regimes=None)
    plotinfo = dict(subplot=True, plotname="regime", plotymargin=0.1)
    plotlines = dict(regime=dict(_method="bar", alpha=0.5, width=1.0),
                     **{name: dict(_plotskip=True) for name in ("regime_prob", *_PROBS)})

    def __init__(self):
        self.regimes = _as_regimes(self.p.regimes)
        if self.regimes.n_regimes > MAX_REGIMES:
            raise ValueError(f"the regime model has {self.regimes.n_regimes} regimes; "
                             f"RegimeIndicator has lines for at most {MAX_REGIMES}")
        self._filter = RegimeFilter(self.regimes)
        super().__init__()
        self.plotinfo.plotname = f"regime {self.predictor.name}"
        want = len(self.regimes.mean)
        have = (self.predictor.model.config.get("d_model") if self.regimes.source == "state"
                else len(self.predictor.feature_spec.names))
        if have is not None and have != want:
            raise ValueError(f"the regime model reads {want} numbers per bar "
                             f"({self.regimes.source}) but this model gives {have}: it was "
                             "fitted on another model")

    def _new_stream(self):
        return self.predictor.stream(hidden=self.regimes.source == "state")

    def _vector(self) -> np.ndarray:
        s = self._stream
        return s.hidden if self.regimes.source == "state" else s.inputs

    def _write(self, probs) -> None:
        lines = self.lines
        if probs is None:
            for name in _LINES:
                getattr(lines, name)[0] = math.nan
            return
        k = int(np.argmax(probs))
        lines.regime[0] = float(k)
        lines.regime_prob[0] = float(probs[k])
        for i, name in enumerate(_PROBS):
            getattr(lines, name)[0] = float(probs[i]) if i < len(probs) else math.nan

    def _after_step(self, out: dict) -> None:
        if self._since_reset < self._warmup:
            self._write(None)
            return
        if self._since_reset == self._warmup:  # the first bar with lines: a fresh filter
            self._filter.reset()
        self._write(self._filter.step(self._vector()))

    def _series_segment(self, result: dict, seg: dict, x, keep) -> None:
        if not keep.any():
            return
        first = int(np.argmax(keep))
        V = seg["hidden"] if self.regimes.source == "state" else x
        probs = self.regimes.filter(V[first:])  # (n, K)
        result["regime"][first:] = probs.argmax(1)
        result["regime_prob"][first:] = probs.max(1)
        for i in range(probs.shape[1]):
            result[_PROBS[i]][first:] = probs[:, i]

    # -- state ---------------------------------------------------------------------------
    def reset_state(self) -> None:
        super().reset_state()
        self._filter.reset()

    def get_state(self) -> dict:
        return {**super().get_state(), "regime": self._filter.get_state()}

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if "regime" in state:
            self._filter.set_state(state["regime"])
        else:
            self._filter.reset()

    @property
    def regime_probabilities(self) -> np.ndarray:
        """This bar's regime probabilities (K,) (NaN before the warm-up ends)."""
        return np.array([getattr(self.lines, name)[0]
                         for name in _PROBS[:self.regimes.n_regimes]])
