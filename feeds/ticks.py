"""Tick feeds: trades and best bid/offer merged into one event stream.

Each event is either a best bid/offer (BBO) update or a trade. Every event carries the
latest BBO (``bid, ask, bid_size, ask_size, mid``) so a strategy always sees the mid; trade
events also carry ``trade_price, trade_size, trade_side`` (+1 buy / −1 sell aggressor),
NaN on BBO events. ``close`` is the mid (so the broker marks positions to the mid),
``high``/``low`` span the mid and the trade price, ``volume`` is the traded size.

Trades are stamped at the event's place in time *before* any BBO update with the same
stamp, and see the BBO strictly before them: a quote set on the post-trade book can never
be filled by the trade that moved it.

Clocks. In the embedded Binance recordings the trade ``timestamp`` is the exchange's
clock and the BBO ``timestamp`` the recorder's receive clock, which ran about 1.27 s behind.
The recorder received trades in batches: prints the exchange made tens of milliseconds
apart arrive within microseconds of each other. Three clocks:

- ``clock="exchange"``: every event at its exchange time, where the stream has one (trades:
  the trade time; USD-M bookTicker: its transaction time ``T``; spot bookTicker has none and
  stays on the receive clock). Each match is stamped with its own time, in the order the
  matching engine made it; latency to and from the exchange is then the broker's to model
  (``MarketMakingBroker(latency=...)``). On the USD-M sample 99.4 % of trade events print at
  or through the pre-trade best bid/offer (95.5 % on the receive clock).
- ``clock="local"``: both streams on the recorder's receive time, one clock; a batch of
  prints gets the batch's time. On the spot sample 85 % print at or inside the pre-trade
  best bid/offer; most of the rest print through a stale book in the fast market of
  23:57–23:59 UTC.
- ``clock="auto"`` (default): ``"exchange"`` when the BBO stream has exchange times (USD-M),
  else ``"local"`` (spot, where mixing clocks 1.3 s apart would put trades out of step with
  the book).

Use::

    data = TickData(name="binance:BTCUSDT")          # embedded spot sample, 80,309 events
    cerebro.adddata(data, name="BTCUSDT")
    events = load_ticks("binance:BTCUSDT")           # the same as a DataFrame
    events = merge_ticks(my_trades, my_bbo)          # your own trades + BBO frames
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from . import embedded as _embedded
from .arrayfeed import ArrayData
from .bartime import utc_timestamp
from .errors import DataError
from .validate import clean_ticks

__all__ = ["TICK_LINES", "TickData", "load_ticks", "merge_ticks"]

TICK_LINES = ("bid", "ask", "bid_size", "ask_size", "mid", "trade_price", "trade_size",
              "trade_side")
_BBO = ["bid", "ask", "bid_size", "ask_size", "mid"]
#: the columns every event of a :class:`TickData` frame carries (trade columns are optional)
EVENT_COLUMNS = ("open", "high", "low", "close", "volume", *_BBO)
_SIDES = {"buy": 1.0, "sell": -1.0, "b": 1.0, "s": -1.0}


def _side_sign(side: pd.Series) -> np.ndarray:
    """``buy/sell/b/s`` (any case) or a signed number as +1/−1; missing stays NaN, anything
    else (an unknown word, zero) is a ``DataError`` naming the rows."""
    if side.dtype == object or isinstance(side.dtype, pd.StringDtype):
        sign = side.str.lower().map(_SIDES).to_numpy(float)
    else:
        sign = np.sign(side.to_numpy(dtype=float))
        sign[sign == 0] = np.inf  # zero is no side: reported below
    bad = side.notna().to_numpy() & ~np.isin(sign, (-1.0, 1.0))
    if bad.any():
        raise DataError(f"trades: {int(bad.sum())} trades with an unknown side "
                        f"{side[bad].unique()[:5].tolist()} at {list(side.index[bad][:5])}; "
                        "use buy/sell or +1/-1")
    return sign


def _aggregate_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """One event per run of trades from one matching event (same ``match_id`` or stamp, same side).

    ``trade_price`` is the run's worst price (its sweep depth), ``trade_size`` the size
    printed at that price and ``volume`` the run's total size.
    """
    key = trades["match_id"].to_numpy() if "match_id" in trades else trades.index.asi8
    sign = trades["sign"].to_numpy()
    new = np.ones(len(trades), dtype=bool)
    new[1:] = (key[1:] != key[:-1]) | (sign[1:] != sign[:-1])
    run = np.cumsum(new) - 1
    df = pd.DataFrame({"run": run, "price": trades["price"].to_numpy(float),
                       "size": trades["size"].to_numpy(float), "sign": sign})
    # worst price of the run: highest for buys, lowest for sells
    df["key"] = df["price"] * df["sign"]
    g = df.groupby("run", sort=True)
    worst_key = g["key"].transform("max")
    at_worst = np.isclose(df["key"], worst_key, rtol=0, atol=1e-9)
    out = pd.DataFrame({
        "trade_price": g["key"].max().to_numpy() * g["sign"].first().to_numpy(),
        "trade_size": df[at_worst].groupby("run")["size"].sum().to_numpy(),
        "trade_side": g["sign"].first().to_numpy(),
        "volume": g["size"].sum().to_numpy(),
    }, index=trades.index[new])
    return out


def merge_ticks(trades: pd.DataFrame, bbo: pd.DataFrame, aggregate: bool = True
                ) -> pd.DataFrame:
    """Merge a trades frame and a BBO frame into one event frame (see the module doc).

    ``trades``: DatetimeIndex, ``price, size, side`` (``"buy"/"sell"`` or ±1), optional
    ``match_id`` (trades of one matching event, aggregated when ``aggregate``).
    ``bbo``: DatetimeIndex, ``bid, ask, bid_size, ask_size`` (``mid`` computed if missing).

    Both frames are checked first (``feeds.validate.clean_ticks``: no NaT, finite positive
    prices, non-negative sizes, known sides); bad rows are a ``DataError`` naming them.
    """
    if "side" not in trades:
        raise DataError(f"trades: missing column 'side'; have {list(trades.columns)}")
    t = trades.assign(side=_side_sign(trades["side"]))
    t = clean_ticks(t, required=("price", "size", "side"), name="trades")
    bbo = clean_ticks(bbo, required=("bid", "ask", "bid_size", "ask_size"), name="bbo")
    t["sign"] = t["side"]
    if aggregate:
        tev = _aggregate_trades(t)
    else:
        tev = pd.DataFrame({"trade_price": t["price"].to_numpy(float),
                            "trade_size": t["size"].to_numpy(float),
                            "trade_side": t["sign"].to_numpy(float),
                            "volume": t["size"].to_numpy(float)}, index=t.index)
    q = bbo[["bid", "ask", "bid_size", "ask_size"]].astype(float).copy()
    q["mid"] = bbo["mid"].astype(float) if "mid" in bbo else 0.5 * (q["bid"] + q["ask"])
    q["volume"] = 0.0
    tev["_order"] = 0  # trades before a BBO update with the same stamp
    q["_order"] = 1
    ev = pd.concat([tev, q], axis=0, sort=False)
    ev["_ns"] = ev.index.as_unit("ns").asi8
    ev = ev.sort_values(["_ns", "_order"], kind="stable")
    ev[_BBO] = ev[_BBO].ffill()
    ev = ev[ev["mid"].notna()]
    mid = ev["mid"].to_numpy()
    tp = ev["trade_price"].to_numpy(dtype=float)
    out = pd.DataFrame({
        "open": mid,
        "high": np.fmax(mid, tp),
        "low": np.fmin(mid, tp),
        "close": mid,
        "volume": ev["volume"].to_numpy(float),
        **{c: ev[c].to_numpy(float) for c in _BBO},
        "trade_price": tp,
        "trade_size": ev["trade_size"].to_numpy(float),
        "trade_side": ev["trade_side"].to_numpy(float),
    }, index=pd.DatetimeIndex(ev.index, name="datetime"))
    return out


@functools.lru_cache(maxsize=8)
def _raw(name: str) -> pd.DataFrame:
    return _embedded.read_raw(name)


def _has_exchange_time(raw: pd.DataFrame) -> bool:
    return "exch_time_ms" in raw and bool(raw["exch_time_ms"].notna().all())


def _stamp(raw: pd.DataFrame, clock: str) -> pd.DatetimeIndex:
    """The stream's event times on ``clock`` (``"exchange"``: where it has exchange times)."""
    if clock == "exchange" and _has_exchange_time(raw):
        ms = raw["exch_time_ms"].to_numpy(dtype="int64")
        return pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True))
    return pd.DatetimeIndex(pd.to_datetime(raw["local_time_ns"], unit="ns", utc=True))


def load_ticks(name: str = "binance:BTCUSDT", fromdate=None, todate=None,
               clock: str = "auto", aggregate: bool = True,
               max_events: int | None = None) -> pd.DataFrame:
    """The embedded trades and BBO of ``name`` (``"binance:BTCUSDT"``,
    ``"binance-usdm:BTCUSDT"``; a trailing ``:trades``/``:bbo`` is ignored) as one event frame.

    ``fromdate``/``todate`` cut the range (naive means UTC); ``max_events`` keeps the first
    events only.
    """
    if clock not in ("auto", "local", "exchange"):
        raise ValueError(f"clock must be 'auto', 'local' or 'exchange', got {clock!r}")
    base = name.removesuffix(":trades").removesuffix(":bbo")
    tname, bname = f"{base}:trades", f"{base}:bbo"
    if not (_embedded.is_tick_dataset(tname) and _embedded.is_tick_dataset(bname)):
        ticks = sorted({n.rsplit(":", 1)[0] for n in _embedded.list_embedded("ticks")})
        raise DataError(f"unknown tick dataset {name!r}; choose from {ticks}")
    rt, rb = _raw(tname), _raw(bname)
    if clock == "auto":
        clock = "exchange" if _has_exchange_time(rb) else "local"
    trades = pd.DataFrame({"price": rt["price"].to_numpy(float),
                           "size": rt["size"].to_numpy(float),
                           "side": rt["side"].to_numpy(),
                           "match_id": rt["exch_time_ms"].to_numpy()},
                          index=_stamp(rt, clock))
    bbo = pd.DataFrame({c: rb[c].to_numpy(float) for c in ("bid", "ask", "bid_size", "ask_size")},
                       index=_stamp(rb, clock))
    ev = merge_ticks(trades, bbo, aggregate=aggregate)
    if fromdate is not None:
        ev = ev[ev.index >= utc_timestamp(fromdate)]
    if todate is not None:
        ev = ev[ev.index <= utc_timestamp(todate)]
    if max_events is not None:
        ev = ev.iloc[: int(max_events)]
    return ev.copy()


class TickData(ArrayData):
    """A backtrader feed of merged trade and BBO events.

    Params:
      - ``name``: embedded tick dataset (``"binance:BTCUSDT"``, ``"binance-usdm:BTCUSDT"``),
        used when ``dataname`` is not given;
      - ``dataname``: a frame from :func:`load_ticks` / :func:`merge_ticks` instead;
      - ``clock`` (``"auto"``), ``aggregate`` (``True``), ``max_events`` (``None``): as
        for :func:`load_ticks`.

    Lines: ``open, high, low, close (= mid), volume`` plus ``bid, ask, bid_size, ask_size,
    mid, trade_price, trade_size, trade_side`` (NaN where an event has no trade).

    A frame must carry ``open, high, low, close, volume, bid, ask, bid_size, ask_size, mid``
    (trade columns are optional: absent means no trades) and is checked by
    ``feeds.validate.clean_ticks`` when the feed starts. A feed without a name is called
    ``"ticks"`` (``adddata(..., name=)`` renames it).
    """

    lines = TICK_LINES
    params = (("name", None), ("clock", "auto"), ("aggregate", True), ("max_events", None))
    _serves_ticks = True  # events, not bars: resampled as backtrader resamples ticks

    def __init__(self):
        super().__init__()
        # backtrader takes the data's name from ``p.name`` (the embedded dataset) or a string
        # ``dataname``; a frame alone would leave it None, which breaks multi-data observers
        if not self.p.name and not isinstance(self.p.dataname, str):
            self._name = "ticks"

    def _clean(self, df: pd.DataFrame) -> pd.DataFrame:
        return clean_ticks(df, required=EVENT_COLUMNS, name=self._label())

    def _frame(self) -> pd.DataFrame:
        df = self.p.dataframe if self.p.dataframe is not None else self.p.dataname
        if isinstance(df, pd.DataFrame):
            return df
        name = self.p.name or (df if isinstance(df, str) else None)
        if name is None:
            raise ValueError("TickData needs name= (an embedded tick dataset) or a DataFrame")
        return load_ticks(name, clock=self.p.clock, aggregate=self.p.aggregate,
                          max_events=self.p.max_events)
