"""``TickLeanIndicator``: the tick lean (``training.tick_lean``) as the market maker's trend.

On a tick feed (``feeds.TickData``: lines ``bid, ask, bid_size, ask_size, mid, trade_side``
and ``volume``) every ``next()`` is one event: the event goes into the streaming features
(``features.tick_stream``, equal to the batch ones) and, whenever it closes grid steps, the
model's recurrent state advances one step per closed step (``SSMStepper``: numba, no torch
per event). ``pred_return`` is the prediction of the last closed grid step: the mid log
return over the next ``horizon`` seconds (stale by at most one grid step).

The gate: with ``gate=True`` (default) a model whose walk-forward found no skill
(``predictor.has_skill`` False) gives ``pred_return = 0`` on every event: no lean.

Horizon. ``AvellanedaStoikovStrategy`` turns ``pred_return`` over ``trend_horizon`` seconds
into a drift; on a tick feed it has no bar length, so pass ``trend_horizon`` = this
indicator's ``horizon_s`` (``tick_lean_params`` does)::

    cerebro.addstrategy(AvellanedaStoikovStrategy, **tick_lean_params("runs/tick_lean.pt"))

``pred_horizon`` (grid steps) is declared too, for a strategy given ``bar_seconds`` = the
grid step.

Times: backtrader's float dates carry ~10 µs of rounding; event times are snapped to the
millisecond (``feeds.bartime.num_to_index``'s rule), exact for the USD-M sample's
matching-engine clock.
"""

from __future__ import annotations

import functools
import math

import backtrader as bt

from feeds.bartime import EPOCH_ORDINAL

from ..model.tick_lean import TickLeanPredictor, load_tick_lean

__all__ = ["TickLeanIndicator", "event_time_ns", "tick_lean_params"]

_MS_PER_DAY = 86_400_000.0


def event_time_ns(num: float) -> int:
    """A backtrader float date as integer nanoseconds since the epoch, snapped to the ms."""
    return int(round((num - EPOCH_ORDINAL) * _MS_PER_DAY)) * 1_000_000


def _as_predictor(model) -> TickLeanPredictor:
    if isinstance(model, TickLeanPredictor):
        return model
    if model is None:
        raise ValueError("TickLeanIndicator needs model= (a tick-lean checkpoint path or a "
                         "TickLeanPredictor)")
    return load_tick_lean(model)


class TickLeanIndicator(bt.Indicator):
    """The predicted mid log return over ``horizon`` seconds, event by event.

    Params:
      - ``model``: tick-lean checkpoint path or a :class:`TickLeanPredictor`
      - ``gate``: emit 0 unless the walk-forward found skill (``predictor.has_skill``)
      - ``horizon``: seconds the line spans (``None``: the model's ``horizon_s``); another
        value scales the prediction linearly (a constant drift over the horizon)

    NaN until ``warmup_s`` seconds of grid steps are in (the strategy then leans by 0),
    0 throughout when gated off.
    """

    lines = ("pred_return",)
    params = dict(model=None, gate=True, horizon=None)
    plotinfo = dict(subplot=True, plotname="tick lean")

    def __init__(self):
        self.predictor = _as_predictor(self.p.model)
        spec = self.predictor.spec
        self.horizon_s = float(self.p.horizon or spec.horizon_s)
        if not self.horizon_s > 0:
            raise ValueError(f"horizon must be > 0 seconds, got {self.p.horizon}")
        self.pred_horizon = self.horizon_s / spec.dt  # in grid steps
        self.active = bool(self.predictor.has_skill or not self.p.gate)
        self._stream = self.predictor.stream()
        self._factor = self.horizon_s / spec.horizon_s
        self._warmup = spec.warmup
        d = self.data
        self._src = (d.datetime, d.lines.bid, d.lines.ask, d.lines.bid_size, d.lines.ask_size,
                     d.lines.mid, d.lines.trade_side, d.volume)

    def _plotlabel(self):
        return [f"gate={'open' if self.active else 'closed'}", f"{self.horizon_s:g} s"]

    def get_state(self) -> dict:
        return self._stream.get_state()

    def set_state(self, state: dict) -> None:
        self._stream.set_state(state)

    def prenext(self):
        self.next()

    def next(self):
        if not self.active:
            self.lines.pred_return[0] = 0.0
            return
        dt, bid, ask, bq, aq, mid, side, vol = self._src
        pred = self._stream.update(event_time_ns(dt[0]), bid[0], ask[0], bq[0], aq[0], mid[0],
                                   side[0], vol[0])
        ok = self._stream.steps > self._warmup
        self.lines.pred_return[0] = pred * self._factor if ok else math.nan


def tick_lean_params(model, gate: bool = True) -> dict:
    """``AvellanedaStoikovStrategy`` params for the tick lean: ``trend`` (a factory of
    :class:`TickLeanIndicator`) and ``trend_horizon`` (its horizon, seconds)."""
    predictor = _as_predictor(model)
    return {"trend": functools.partial(TickLeanIndicator, model=predictor, gate=gate),
            "trend_horizon": predictor.horizon_s}
