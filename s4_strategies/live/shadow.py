"""``ShadowBroker``: run a strategy on the live feed, fill as the backtest would, send nothing.

The step a careful desk takes before committing capital: the strategy places its orders as
it would live; this broker fills them exactly as the backtest's broker does (it *is*
backtrader's ``BackBroker``: a market order fills at the next bar's open, limits and stops
on the next bars' ranges, with the commission you set), and journals every order event with
the model's predictions and the live prices it met. Nothing reaches an exchange.

The journal is JSON lines, one record per order event::

    {"wall": "2026-12-03T10:00:02.1+00:00", "bar": "2026-12-03T09:00:00+00:00",
     "data_from": "2026-11-12T04:00:00+00:00", "symbol": "BTCUSDT", "ref": 7,
     "status": "Completed", "side": "buy", "type": "Market",
     "size": 0.012, "price": null, "exec_size": 0.012, "exec_price": 30012.5,
     "comm": 0.198, "close": 30001.0, "position": 0.012, "value": 10003.2,
     "predictions": {"signal": 1.0, "confidence": 0.61, "pred_return": 0.0012, ...}}

``bar`` is the bar the broker was on when the event happened (for a fill, the bar whose
open it met); ``data_from`` the first bar the feed served (where the model's history
began). :mod:`s4_strategies.live.replay` reads it back, replays it through the analyzers and
compares it with the backtest of the same bars (``s4trade shadow-report``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import backtrader as bt

from .journal import JournalFile, order_record

logger = logging.getLogger(__name__)


class ShadowBroker(bt.brokers.BackBroker):
    """backtrader's backtest broker on live bars, with a journal and no exchange.

    Params (besides ``BackBroker``'s: ``cash``, ``slip_perc``, …):
      - ``journal``: path of the JSON-lines journal (appended to; ``None``: memory only)
      - ``clock``: callable returning the current UTC time (tests); default the wall clock

    ``records``: every journalled event of this run. ``watchers``: objects whose
    ``poll(now)`` runs in every :meth:`next`, bar or not (the kill switch's stale-data check).
    ``get_state()``/``set_state()``: cash and positions, for a restart.
    """

    params = (("journal", None), ("clock", None))

    def __init__(self):
        super().__init__()
        self.watchers = []
        self.records: list[dict] = []
        self._file = None

    def start(self):
        super().start()
        if self.p.journal is not None:
            self._file = JournalFile(self.p.journal)

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        super().stop()

    def _now(self) -> datetime:
        return self.p.clock() if self.p.clock is not None else datetime.now(timezone.utc)

    def notify(self, order):
        super().notify(order)
        self.record(order)

    def record(self, order) -> dict:
        """Journal one order event (called for every notification)."""
        rec = order_record(order, self, self._now())
        self.records.append(rec)
        if self._file is not None:
            self._file.write(rec)
        return rec

    def next(self):
        super().next()
        if self.watchers:
            now = self._now()
            for w in list(self.watchers):
                w.poll(now)

    # -- restart --------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"cash": self.cash,
                "positions": {d._name: [p.size, p.price] for d, p in self.positions.items()
                              if p.size}}

    def set_state(self, state: dict, datas) -> None:
        """Cash and positions of an earlier run, on this run's ``datas`` (call from the
        strategy's ``start()``, before its first order). A state an exchange's broker saved
        (a testnet run in the same folder) holds no shadow account: ignored, with a warning."""
        if not isinstance(state, dict) or "cash" not in state:
            logger.warning("shadow broker: the saved state holds another broker's account "
                           "(%s); the shadow account starts from its cash",
                           state.get("broker") if isinstance(state, dict) else type(state))
            return
        self.cash = self.startingcash = float(state["cash"])
        names = {d._name: d for d in datas}
        for name, (size, price) in state.get("positions", {}).items():
            data = names.get(name)
            if data is None:
                raise ValueError(f"shadow state has a position in {name!r}, which this run "
                                 f"does not trade (feeds: {sorted(names)})")
            self.positions[data].set(size, price)
