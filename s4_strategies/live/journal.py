"""The order journal: one JSON line per order event, with the model's predictions on that
bar and the live prices it met (see :mod:`s4_strategies.live.shadow` for the record's
fields). ``ShadowBroker`` keeps one; ``OrderJournal`` keeps the same for any broker (a
testnet or mainnet run), so ``s4trade shadow-report`` reads either.
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path

import backtrader as bt

_PRED_LINES = ("signal", "confidence", "expected_signal", "pred_return", "pred_move", "pred_vol")


def _clean(x):
    return None if isinstance(x, float) and not math.isfinite(x) else x


def predictions_of(owner) -> dict:
    """The S4 lines of the strategy's indicator (``owner.s4``) on this bar, if it has one."""
    s4 = getattr(owner, "s4", None)
    if s4 is None:
        return {}
    out = {}
    for name in _PRED_LINES:
        line = getattr(s4.lines, name, None)
        if line is not None and len(line):
            out[name] = _clean(float(line[0]))
    return out


def order_record(order, broker, now: datetime) -> dict:
    """The journal record of one order event, as ``broker`` sees it at ``now``."""
    data = order.data
    bar = first = None
    if len(data):
        bar = data.datetime.datetime(0).replace(tzinfo=timezone.utc).isoformat()
        first = data.datetime.datetime(1 - len(data)).replace(tzinfo=timezone.utc).isoformat()
    ex = order.executed
    return {
        "wall": now.isoformat(),
        "bar": bar,
        "data_from": first,
        "symbol": data._name,
        "ref": order.ref,
        "status": order.getstatusname(),
        "side": "buy" if order.isbuy() else "sell",
        "type": order.getordername(),
        "size": order.created.size,
        "price": _clean(order.created.price) if order.exectype != bt.Order.Market else None,
        "exec_size": ex.size,
        "exec_price": _clean(ex.price) if ex.size else None,
        "comm": ex.comm,
        "close": _clean(float(data.close[0])) if len(data) else None,
        "position": broker.getposition(data).size,
        "value": _clean(float(broker.getvalue())),
        "predictions": predictions_of(order.owner),
    }


class JournalFile:
    """Appends records to a JSON-lines file, each flushed; fsynced when closed."""

    def __init__(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run)

    def write(self, rec: dict) -> None:
        self._file.write(json.dumps(rec) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


class OrderJournal(bt.Analyzer):
    """The order journal of any broker (``path``: the JSON-lines file, appended to).
    ``get_analysis()``: ``{"records": [...]}`` of this run."""

    params = dict(path=None, clock=None)

    def start(self):
        self.records = []
        self._file = JournalFile(self.p.path) if self.p.path is not None else None

    def notify_order(self, order):
        now = self.p.clock() if self.p.clock is not None else datetime.now(timezone.utc)
        rec = order_record(order, self.strategy.broker, now)
        self.records.append(rec)
        if self._file is not None:
            self._file.write(rec)

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def get_analysis(self):
        return {"records": self.records}
