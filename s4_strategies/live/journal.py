"""The order journal: one JSON line per order event, with the model's predictions on that
bar and the live prices it met (see :mod:`s4_strategies.live.shadow` for the record's
fields). ``ShadowBroker`` keeps one; ``OrderJournal`` keeps the same for any broker (a
testnet or mainnet run), so ``s4trade shadow-report`` reads either.

Records of an exchange's orders also carry ``link`` (the client order id, the same across
restarts), ``exec_ids`` (the exchange's ids of the fills a Partial/Completed event reports)
and ``adopted`` (an order an earlier run placed, taken over after a restart). A restarted
run appends to the same file and writes each event once: an event whose fills (or, without
fills, whose order and status) the file already holds is not written again, so a fill
re-read after a crash appears once.
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


def predictions_of(owner, data=None) -> dict:
    """The S4 lines of the strategy's indicator (``owner.s4``) on this bar, if it has one;
    for a multi-asset strategy (``owner.shared``) the model's outputs for ``data``'s asset
    at the last bar time it stepped (``weight`` among them)."""
    shared = getattr(owner, "shared", None)
    if shared is not None and data is not None:
        out = shared.latest.get(getattr(data, "_name", None)) or {}
        return {k: _clean(float(v)) for k, v in out.items() if isinstance(v, (int, float))}
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
        "predictions": predictions_of(order.owner, data),
        "link": order.info.get("orderLinkId"),
        "exec_ids": list(getattr(order, "exec_ids", ()) or ()),
        "adopted": bool(order.info.get("adopted", False)),
    }


def _event_keys(rec: dict) -> list:
    """What makes a record the same event in another run: its fills' ids, else its order's
    client id with the status (nothing for an order without a client id)."""
    if rec.get("exec_ids"):
        return [("exec", e) for e in rec["exec_ids"]]
    link = rec.get("link")
    return [("status", link, rec.get("status"))] if link else []


def read_records(path) -> list[dict]:
    """The records of a journal file (none if it does not exist); lines that are not JSON
    (a line cut short by a crash) are skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


class JournalFile:
    """Appends records to a JSON-lines file, each flushed; fsynced when closed."""

    def __init__(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torn = path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open for the run)
        if torn:  # a crash cut the last line short: start ours on a line of its own
            self._file.write("\n")

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
        self._known = set()
        if self.p.path is not None:
            for rec in read_records(self.p.path):
                self._known.update(_event_keys(rec))
        self._file = JournalFile(self.p.path) if self.p.path is not None else None

    def notify_order(self, order):
        now = self.p.clock() if self.p.clock is not None else datetime.now(timezone.utc)
        rec = order_record(order, self.strategy.broker, now)
        keys = _event_keys(rec)
        if keys and all(k in self._known for k in keys):
            return  # written by an earlier run (a fill re-read after a restart)
        self._known.update(keys)
        self.records.append(rec)
        if self._file is not None:
            self._file.write(rec)

    def stop(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def get_analysis(self):
        return {"records": self.records}
