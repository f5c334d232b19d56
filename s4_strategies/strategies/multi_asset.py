"""``S4MultiAssetStrategy``: long-only allocation from the portfolio head of one multi-asset
model (``MultiAssetS4``) that reads every asset through one recurrent state."""

from __future__ import annotations

import backtrader as bt

from ..fees import apply_fees, target_size
from ..indicators.multi import as_multi_predictor, bar_tuple


class S4MultiAssetStrategy(bt.Strategy):
    """Targets the model's "weights" head (long-only, sum ≤ 1, the rest in cash).

    Every bar, each data's current bar goes to the model's one stream (a data that has not
    started yet, or has no bar at this time, goes as ``None``: a zero input, as in
    training). At each rebalance the warmed-up assets get the weights the model gives them,
    each capped at ``max_weight``; assets not warm yet get none. Datas may start on
    different dates: an asset joins once it has seen the feature warm-up of its own bars.
    Orders go through ``order_target_size`` with fractional sizes (``fees.target_size``),
    sells first; changes smaller than ``min_trade`` are skipped.

    Params:
      - ``model``: a ``MultiPredictor`` or the path of an "s4-multi/1" checkpoint; the datas
        must carry the model's asset names (``cerebro.adddata(data, name=...)``)
      - ``rebalance``: bars between rebalances
      - ``max_weight``: cap per asset (fraction of portfolio value)
      - ``min_trade``: smallest weight change traded
      - ``fees``: ``"bybit"``: Bybit's taker fee where the broker still has backtrader's
        default commission (a commission you set is kept); ``None``: leave it
    """

    params = dict(model=None, rebalance=24, max_weight=1.0, min_trade=0.02, fees="bybit")

    def __init__(self):
        self.predictor = as_multi_predictor(self.p.model)
        names = [d._name for d in self.datas]
        missing = [a for a in self.predictor.assets if a not in names]
        if missing:
            raise ValueError(f"the model trades {self.predictor.assets}; no data is named "
                             f"{missing} (datas: {names})")
        self.assets = {a: self.datas[names.index(a)] for a in self.predictor.assets}
        self.stream = self.predictor.stream()
        self.latest: dict[str, dict] = {}  # the stream's last outputs (warm assets only)
        self._bar = 0
        self.rebalances = 0
        self.weights_history = []  # (datetime, {asset: target weight})
        self.failed_orders = []  # (datetime, asset, status name)

    def start(self):
        apply_fees(self.broker, self.datas, self.p.fees)

    def prenext(self):
        # Some datas have not started yet: feed the stream and trade the others.
        self.next()

    def _now(self):
        return max(d.datetime.datetime(0) for d in self.assets.values() if len(d))

    def next(self):
        now = self._now()
        bars = {a: bar_tuple(d) if len(d) and d.datetime.datetime(0) == now else None
                for a, d in self.assets.items()}
        self.latest = self.stream.step(bars)
        self._bar += 1
        if (self._bar - 1) % self.p.rebalance or not self.latest:
            return
        cap = self.p.max_weight
        weights = {a: min(cap, max(0.0, out["weight"])) for a, out in self.latest.items()
                   if bars[a] is not None}
        value = self.broker.getvalue()
        moves = []
        for a, w in weights.items():
            d = self.assets[a]
            current = self.getposition(d).size * d.close[0] / value if value > 0 else 0.0
            if abs(w - current) >= self.p.min_trade or (w == 0 and current != 0):
                moves.append((w - current, a, w))
        for _, a, w in sorted(moves):  # sells first so that buys find the cash
            d = self.assets[a]
            self.order_target_size(data=d, target=target_size(self.broker, d, w))
        self.rebalances += 1
        self.weights_history.append((now, weights))

    def notify_order(self, order):
        if order.status in (order.Margin, order.Rejected, order.Canceled):
            self.failed_orders.append((self._now(), order.data._name, order.getstatusname()))
