"""``S4PortfolioStrategy``: allocate across several instruments from per-asset S4 predictions."""

from __future__ import annotations

import math

import backtrader as bt

from ..fees import apply_fees, target_size
from ..indicators import S4Indicator


class S4PortfolioStrategy(bt.Strategy):
    """Target weights at a rebalance interval, from one S4 indicator per data.

    Each asset's score is its predicted return per unit of predicted volatility
    (``pred_return / pred_vol``, a Sharpe-like forecast), kept only where the predicted
    class agrees in sign and its confidence clears ``conf_threshold``. Scores become
    weights proportional to score / volatility, scaled to ``gross_leverage``, capped at
    ``max_weight`` per asset, long-only if asked. Orders go through
    ``order_target_percent``; changes smaller than ``min_trade`` are skipped.

    Datas may start on different dates: an asset joins once its indicator has warmed up.

    Params:
      - ``model``: one checkpoint path / loaded model for all datas, or a dict
        ``{data name: model}``
      - ``indicator``: extra keyword arguments for every :class:`S4Indicator`
      - ``rebalance``: bars between rebalances
      - ``max_weight``, ``gross_leverage``, ``long_only``, ``min_trade``, ``conf_threshold``
      - ``fees``: ``"bybit"`` charges Bybit's taker fee at start where the broker still has
        backtrader's default commission (a commission you set is kept); ``None``: leave it

    Sizes are fractional (``fees.target_size``) whatever the commission scheme.
    """

    params = dict(
        model=None,
        indicator=None,
        rebalance=24,
        max_weight=0.4,
        gross_leverage=1.0,
        long_only=True,
        min_trade=0.02,
        conf_threshold=0.4,
        fees="bybit",
    )

    def __init__(self):
        self.s4 = {}
        for d in self.datas:
            model = self.p.model
            if isinstance(model, dict):
                model = model[d._name]
            self.s4[d] = S4Indicator(d, model=model, **(self.p.indicator or {}))
        self._bar = 0
        self.rebalances = 0
        self.weights_history = []

    def start(self):
        apply_fees(self.broker, self.datas, self.p.fees)

    def prenext(self):
        # Some datas have not started yet (SOLUSDT lists in October 2021): trade the others.
        self.next()

    def score(self, data, ind) -> float | None:
        """Forecast for one asset, or None when it has no usable prediction. Override me."""
        sig, conf, ret, vol = ind.signal[0], ind.confidence[0], ind.pred_return[0], ind.pred_vol[0]
        if any(math.isnan(v) for v in (sig, conf, ret, vol)) or vol <= 0:
            return None
        disagree = math.copysign(1, ret) != math.copysign(1, sig)
        if conf < self.p.conf_threshold or sig == 0 or disagree:
            return 0.0
        return ret / vol

    def target_weights(self, scores: dict, vols: dict) -> dict:
        """Scores to weights under the constraints."""
        raw = {d: s / vols[d] for d, s in scores.items()}
        if self.p.long_only:
            raw = {d: max(w, 0.0) for d, w in raw.items()}
        gross = sum(abs(w) for w in raw.values())
        if gross <= 0:
            return {d: 0.0 for d in raw}
        weights = {d: w / gross * self.p.gross_leverage for d, w in raw.items()}
        cap = self.p.max_weight
        return {d: max(-cap, min(cap, w)) for d, w in weights.items()}

    def next(self):
        self._bar += 1
        if (self._bar - 1) % self.p.rebalance:
            return
        now = self.datetime.datetime(0)
        scores, vols = {}, {}
        for d, ind in self.s4.items():
            if not len(d) or d.datetime.datetime(0) != now:
                continue
            s = self.score(d, ind)
            if s is not None:
                scores[d], vols[d] = s, ind.pred_vol[0]
        if not scores:
            return
        weights = self.target_weights(scores, vols)
        value = self.broker.getvalue()
        moves = []
        for d, w in weights.items():
            current = self.getposition(d).size * d.close[0] / value if value > 0 else 0.0
            if abs(w - current) >= self.p.min_trade or (w == 0 and current != 0):
                moves.append((w - current, d, w))
        # Sell first so that buys find the cash.
        for _, d, w in sorted(moves, key=lambda m: m[0]):
            self.order_target_size(data=d, target=target_size(self.broker, d, w))
        self.rebalances += 1
        self.weights_history.append((now, {d._name: w for d, w in weights.items()}))
