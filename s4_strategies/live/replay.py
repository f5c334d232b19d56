"""Reading a shadow journal back: its fills, a replay through the analyzers, and the
comparison with the backtest of the same bars.

::

    records = load_journal("runs/live/BTCUSDT/journal.jsonl")
    report = compare_fills(journal_fills(records), backtest_fills)   # same bars, same fills?
    strat = replay(records, frame, analyzers={"qs": QuantStatsAnalyzer})  # tear sheet of it
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import backtrader as bt
import pandas as pd

logger = logging.getLogger(__name__)

FILL_COLUMNS = ["bar", "symbol", "ref", "side", "size", "price", "comm"]


def load_journal(path) -> list[dict]:
    """The journal's records, oldest first. A last line cut short by a crash is skipped
    with a warning; a bad line anywhere else is an error naming it."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == len(lines):
                logger.warning("%s: last line %d is incomplete (a crash mid-write?); skipped",
                               path, i)
                continue
            raise ValueError(f"{path}: line {i} is not a journal record: {exc}") from exc
    return out


def journal_fills(records) -> pd.DataFrame:
    """One row per completed order: the bar it filled on, signed size, average price, fee."""
    rows = [{"bar": pd.Timestamp(r["bar"]), "symbol": r["symbol"], "ref": r["ref"],
             "side": r["side"], "size": r["exec_size"], "price": r["exec_price"],
             "comm": r["comm"]}
            for r in records if r["status"] == "Completed"]
    return pd.DataFrame(rows, columns=FILL_COLUMNS)


def orders_placed(records) -> pd.DataFrame:
    """One row per order the strategy placed: the bar it decided on, side, size, type."""
    rows = [{"bar": pd.Timestamp(r["bar"]), "symbol": r["symbol"], "ref": r["ref"],
             "side": r["side"], "size": r["size"], "type": r["type"], "price": r["price"]}
            for r in records if r["status"] == "Submitted"]
    return pd.DataFrame(rows, columns=["bar", "symbol", "ref", "side", "size", "type", "price"])


def compare_fills(a: pd.DataFrame, b: pd.DataFrame, rel_tol: float = 1e-9) -> dict:
    """Fills of two runs matched by (bar, symbol, side) in order: how many agree in size and
    price within ``rel_tol``, and which appear in one run only."""
    def keyed(df):
        df = df.sort_values(["bar", "symbol", "ref"]).copy()
        df["n"] = df.groupby(["bar", "symbol", "side"]).cumcount()
        return df.set_index(["bar", "symbol", "side", "n"])

    ka, kb = keyed(a), keyed(b)
    both = ka.merge(kb, left_index=True, right_index=True, suffixes=("_a", "_b"))

    def close(x, y):
        return math.isclose(x, y, rel_tol=rel_tol, abs_tol=1e-12)

    same = [close(r.size_a, r.size_b) and close(r.price_a, r.price_b)
            for r in both.itertuples()]
    return {"matched": int(sum(same)), "differ": int(len(same) - sum(same)),
            "only_a": [str(k) for k in ka.index.difference(kb.index)],
            "only_b": [str(k) for k in kb.index.difference(ka.index)],
            "n_a": len(ka), "n_b": len(kb)}


class ReplayStrategy(bt.Strategy):
    """Places a journal's orders again on the bars they were decided on (same side, size,
    type and price), so the shadow run can go through any analyzer. ``fees``: as the
    strategies' (``"bybit"``: the taker fee, unless the broker has a commission set)."""

    params = dict(orders=None, fees="bybit")

    def start(self):
        from ..fees import apply_fees

        apply_fees(self.broker, self.datas, self.p.fees)

    def __init__(self):
        self._plan: dict = {}
        for row in (self.p.orders if self.p.orders is not None else []).itertuples():
            self._plan.setdefault(pd.Timestamp(row.bar).tz_convert("UTC").tz_localize(None),
                                  []).append(row)

    def next(self):
        names = {d._name: d for d in self.datas}
        for row in self._plan.get(pd.Timestamp(self.data.datetime.datetime(0)), []):
            data = names.get(row.symbol, self.data)
            kw = {"data": data, "size": abs(row.size)}
            exectype = {"Market": bt.Order.Market, "Limit": bt.Order.Limit,
                        "Stop": bt.Order.Stop}.get(row.type, bt.Order.Market)
            kw["exectype"] = exectype
            if exectype != bt.Order.Market and row.price is not None:
                kw["price"] = row.price
            (self.buy if row.side == "buy" else self.sell)(**kw)


def replay(records, frame: pd.DataFrame, *, name="data", cash=10_000.0, fees="bybit",
           analyzers=None, setup=None):
    """Run the journal's orders on ``frame`` (the bars of the shadow run) with the backtest
    broker and ``analyzers`` (``{name: AnalyzerClass or (AnalyzerClass, kwargs)}``);
    ``setup(cerebro)`` may add more (e.g. ``analyzers.add_all``). Returns the strategy."""
    from feeds import ArrayData

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(ArrayData(dataname=frame), name=name)
    cerebro.broker.setcash(cash)
    cerebro.addstrategy(ReplayStrategy, orders=orders_placed(records), fees=fees)
    for key, spec in (analyzers or {}).items():
        cls, kw = spec if isinstance(spec, tuple) else (spec, {})
        cerebro.addanalyzer(cls, _name=key, **kw)
    if setup is not None:
        setup(cerebro)
    return cerebro.run(runonce=False)[0]
