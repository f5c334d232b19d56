"""``S4MultiAssetStrategy``: long-only allocation from the portfolio head of one multi-asset
model (``MultiAssetS4``) that reads every asset through one recurrent state."""

from __future__ import annotations

import math

import backtrader as bt

from ..fees import apply_fees, target_size
from ..indicators.multi import SharedStream, as_multi_predictor
from ..rules import REBALANCE_FALLBACK


class S4MultiAssetStrategy(bt.Strategy):
    """Targets the model's "weights" head (long-only, sum ≤ 1, the rest in cash).

    Every bar time, each data's bar goes to the model's one stream (a data that has not
    started yet, or has no bar at this time, goes as ``None``: a zero input, as in
    training; see :class:`~s4_strategies.indicators.multi.SharedStream` for live feeds,
    whose bars of one time arrive one by one). At each rebalance the warmed-up assets get
    the weights the model gives them, each capped at ``max_weight``; assets not warm yet get
    none. Datas may start on different dates: an asset joins once it has seen the feature
    warm-up of its own bars. Orders go through ``order_target_size`` with fractional sizes
    (``fees.target_size``), sells first; changes smaller than ``min_trade`` are skipped (an
    exit is always taken).

    By default it trades the rebalancing its checkpoint carries (``meta["decision"]``,
    chosen on the validation period by net Sharpe after fees and funding,
    ``training.allocation``); without one, every 24 bars and a minimum trade of 0.02.

    Params:
      - ``model``: a ``MultiPredictor`` or the path of an "s4-multi/1" checkpoint; the datas
        must carry the model's asset names (``cerebro.adddata(data, name=...)``)
      - ``rebalance``: bars between rebalances (None: the checkpoint's decision)
      - ``max_weight``: cap per asset (fraction of portfolio value)
      - ``min_trade``: smallest weight change traded (None: the checkpoint's decision)
      - ``fees``: ``"bybit"``: Bybit's taker fee where the broker still has backtrader's
        default commission (a commission you set is kept); ``None``: leave it
      - ``allow_gap``: on a restart, accept (with a warning) a first bar more than one bar
        spacing after the saved state (default: ``StateMismatch``)

    Restarts: ``get_state()``/``set_state()`` (the shared stream and the count of
    rebalances), which ``live.StateSaver`` saves after every bar and restores at start.
    """

    params = dict(model=None, rebalance=None, max_weight=1.0, min_trade=None, fees="bybit",
                  allow_gap=False)

    def __init__(self):
        self.predictor = as_multi_predictor(self.p.model)
        names = [d._name for d in self.datas]
        missing = [a for a in self.predictor.assets if a not in names]
        if missing:
            raise ValueError(f"the model trades {self.predictor.assets}; no data is named "
                             f"{missing} (datas: {names})")
        self.assets = {a: self.datas[names.index(a)] for a in self.predictor.assets}
        self.shared = SharedStream(self.predictor, self.assets)
        self.every, self.min_trade = self._decision()
        self.rebalances = 0
        self.weights_history = []  # (datetime, {asset: target weight})
        self.failed_orders = []  # (datetime, asset, status name)

    def _decision(self) -> tuple[int, float]:
        chosen = {**REBALANCE_FALLBACK, **(self.predictor.meta.get("decision") or {})}
        every = chosen["rebalance"] if self.p.rebalance is None else self.p.rebalance
        band = chosen["min_trade"] if self.p.min_trade is None else self.p.min_trade
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"rebalance must be a whole number of bars >= 1, got {every!r}")
        if isinstance(band, bool) or not isinstance(band, (int, float)) or \
                not 0.0 <= band < math.inf:
            raise ValueError(f"min_trade must be a weight change >= 0, got {band!r}")
        return every, float(band)

    @property
    def latest(self) -> dict:
        """The model's outputs at the last bar time stepped (the warm assets only)."""
        return self.shared.latest

    def start(self):
        apply_fees(self.broker, self.datas, self.p.fees)

    def prenext(self):
        # Some datas have not started yet: feed the stream and trade the others.
        self.next()

    def step_model(self) -> bool:
        """Feed this step's bars to the model; True when a bar time was stepped. What the
        strategy does on a bar where it may not trade (``live.gate``). (Not ``advance``:
        backtrader's lines have one, which moves their buffers.)"""
        return self.shared.update()

    def next(self):
        if self.step_model():
            self.rebalance()

    def rebalance(self) -> None:
        """At every ``rebalance``-th bar time: order the warm assets to their weights."""
        shared = self.shared
        if (shared.steps - 1) % self.every or not shared.latest:
            return
        now = bt.num2date(shared.time)
        cap = self.p.max_weight
        weights = {a: min(cap, max(0.0, out["weight"])) for a, out in shared.latest.items()
                   if a in shared.bars}
        value = self.broker.getvalue()
        moves = []
        for a, w in weights.items():
            d = self.assets[a]
            current = self.getposition(d).size * d.close[0] / value if value > 0 else 0.0
            if abs(w - current) >= self.min_trade or (w == 0 and current != 0):
                moves.append((w - current, a, w))
        for _, a, w in sorted(moves):  # sells first so that buys find the cash
            d = self.assets[a]
            self.order_target_size(data=d, target=target_size(self.broker, d, w))
        self.rebalances += 1
        self.weights_history.append((now, weights))

    def notify_order(self, order):
        if order.status in (order.Margin, order.Rejected, order.Canceled):
            when = bt.num2date(self.shared.time) if self.shared.time is not None else None
            self.failed_orders.append((when, order.data._name, order.getstatusname()))

    # -- state across restarts ----------------------------------------------------------
    @property
    def state_ready(self) -> bool:
        """Whether there is a state to save: a bar time stepped, and not passing over the
        bars a restored state already holds."""
        return self.shared.time is not None and not self.shared.resuming

    @property
    def resumed_from(self) -> str | None:
        """The bar time (UTC ISO) of the state this run continues, while and after resuming."""
        if self.shared.time is None:
            return None
        return bt.num2date(self.shared.time).isoformat() + "+00:00"

    def get_state(self) -> dict:
        """The shared stream after its last bar time and the count of rebalances."""
        return {"shared": self.shared.get_state(), "rebalances": self.rebalances}

    def set_state(self, state: dict) -> None:
        """Continue from :meth:`get_state` (before the first bar; the checks of
        ``SharedStream.resume``)."""
        rebalances = int(state["rebalances"])
        self.shared.resume(state["shared"], allow_gap=self.p.allow_gap)
        self.rebalances = rebalances
