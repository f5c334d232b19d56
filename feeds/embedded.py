"""Real market data shipped inside the package (see ``feeds/data/SOURCES.md``).

Names
-----
Bars (``open, high, low, close, volume``; ``turnover`` where the source has it):

- ``bybit:BTCUSDT:60``  Bybit USDT perpetual, hourly, 2021-01-01 .. 2024-12-31 (35,064 bars)
- ``bybit:ETHUSDT:60``  same, from 2021-03-15 (33,312 bars)
- ``bybit:SOLUSDT:60``  same, from 2021-10-15 (28,176 bars)
- ``yahoo:AAPL:1d``, ``yahoo:MSFT:1d``, ``yahoo:SPY:1d``  daily 2019-01-02 .. 2023-12-29
  (1,258 bars; split-adjusted ``close`` plus ``adj_close``; stamped 00:00 UTC of the date)

Ticks, BTCUSDT on Binance around 2024-08-08 23:54 .. 2024-08-09 00:05 UTC:

- ``binance:BTCUSDT:trades`` / ``binance-usdm:BTCUSDT:trades``  ``price, size, side``
  (aggressor side, ``buy``/``sell``), spot (~11 min) and USD-M perpetual (~6 min)
- ``binance:BTCUSDT:bbo`` / ``binance-usdm:BTCUSDT:bbo``  ``bid, bid_size, ask, ask_size``
  plus ``mid``
"""

from __future__ import annotations

import functools
from importlib import resources

import backtrader as bt
import pandas as pd

from .arrayfeed import ArrayData
from .bartime import utc_timestamp
from .errors import DataError
from .validate import OHLCV, clean_ohlcv, clean_ticks

_BARS = {
    "bybit:BTCUSDT:60": ("bybit_linear_BTCUSDT_1h_2021-2024.csv.gz", "1h"),
    "bybit:ETHUSDT:60": ("bybit_linear_ETHUSDT_1h_2021-03-15_2024.csv.gz", "1h"),
    "bybit:SOLUSDT:60": ("bybit_linear_SOLUSDT_1h_2021-10-15_2024.csv.gz", "1h"),
    "yahoo:AAPL:1d": ("yfinance_AAPL_1d_2019-2023.csv.gz", None),
    "yahoo:MSFT:1d": ("yfinance_MSFT_1d_2019-2023.csv.gz", None),
    "yahoo:SPY:1d": ("yfinance_SPY_1d_2019-2023.csv.gz", None),
}
_SPOT = "20240808T2354-20240809T0005"
_USDM = "20240808T2354-2400"
_TICKS = {
    "binance:BTCUSDT:trades": f"hftbacktest_binance_spot_{_SPOT}_BTCUSDT_trades.csv.gz",
    "binance:BTCUSDT:bbo": f"hftbacktest_binance_spot_{_SPOT}_BTCUSDT_bbo.csv.gz",
    "binance-usdm:BTCUSDT:trades": f"hftbacktest_binance_usdm_{_USDM}_BTCUSDT_trades.csv.gz",
    "binance-usdm:BTCUSDT:bbo": f"hftbacktest_binance_usdm_{_USDM}_BTCUSDT_bbo.csv.gz",
}


def list_embedded(kind: str | None = None) -> list[str]:
    """Names of the embedded datasets: ``kind=None`` all, ``"bars"`` or ``"ticks"``."""
    if kind not in (None, "bars", "ticks"):
        raise ValueError(f"kind must be None, 'bars' or 'ticks', not {kind!r}")
    names = []
    if kind in (None, "bars"):
        names += list(_BARS)
    if kind in (None, "ticks"):
        names += list(_TICKS)
    return names


def is_tick_dataset(name: str) -> bool:
    return name in _TICKS


def bar_frequency(name: str) -> str | None:
    """The bar spacing of an embedded bar dataset (``"1h"``), ``None`` for trading days."""
    return _BARS[name][1]


def _path(filename: str):
    return resources.files("feeds").joinpath("data", filename)


@functools.lru_cache(maxsize=16)
def _read(name: str) -> pd.DataFrame:
    if name in _BARS:
        filename, freq = _BARS[name]
        with resources.as_file(_path(filename)) as path:
            raw = pd.read_csv(path)
        raw.index = pd.to_datetime(raw.pop("timestamp"), utc=True)
        return clean_ohlcv(raw, freq=freq, gaps="raise", name=name)
    with resources.as_file(_path(_TICKS[name])) as path:
        raw = pd.read_csv(path)
    raw.index = pd.DatetimeIndex(pd.to_datetime(raw.pop("timestamp"), utc=True), name="datetime")
    if name.endswith(":trades"):
        out = raw[["price", "size", "side"]].copy()
    else:
        out = raw[["bid", "bid_size", "ask", "ask_size"]].copy()
        out["mid"] = (out["bid"] + out["ask"]) / 2.0
    return out.sort_index(kind="stable")


def load_embedded(name: str, fromdate=None, todate=None) -> pd.DataFrame:
    """Load an embedded dataset as a DataFrame with a UTC DatetimeIndex (bar open).

    ``fromdate``/``todate`` (inclusive; naive means UTC) cut the range.
    """
    if name not in _BARS and name not in _TICKS:
        raise DataError(f"unknown embedded dataset {name!r}; choose from {list_embedded()}")
    df = _read(name)
    if fromdate is not None:
        df = df[df.index >= utc_timestamp(fromdate)]
    if todate is not None:
        df = df[df.index <= utc_timestamp(todate)]
    return df.copy()


def read_raw(name: str) -> pd.DataFrame:
    """The shipped CSV of an embedded dataset, every column as it is in the file (the tick
    files also carry the exchange time ``exch_time_ms`` and the receive time
    ``local_time_ns``). Most users want :func:`load_embedded` instead."""
    filename = _BARS[name][0] if name in _BARS else _TICKS.get(name)
    if filename is None:
        raise DataError(f"unknown embedded dataset {name!r}; choose from {list_embedded()}")
    with resources.as_file(_path(filename)) as path:
        return pd.read_csv(path)


def _as_bars(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Ticks as one-price bars so that any backtrader code can run over them."""
    if not is_tick_dataset(name):
        return df
    if name.endswith(":trades"):
        price, volume = df["price"], df["size"]
        extra = {"side": df["side"].map({"buy": 1.0, "sell": -1.0})}
    else:
        price, volume = df["mid"], pd.Series(0.0, index=df.index)
        extra = {k: df[k] for k in ("bid", "ask", "bid_size", "ask_size")}
    return pd.DataFrame(
        {"open": price, "high": price, "low": price, "close": price, "volume": volume, **extra}
    )


class EmbeddedData(ArrayData):
    """A backtrader feed over an embedded dataset::

        cerebro.adddata(EmbeddedData(name="bybit:BTCUSDT:60", fromdate=datetime(2023, 1, 1)))

    Bars fill ``open … volume`` and ``turnover`` (NaN where absent). Trade ticks arrive as
    one-price bars (``close`` = trade price, ``volume`` = size, ``side`` = +1 buy / −1 sell
    aggressor); best bid/offer ticks as ``close`` = mid with ``bid``, ``ask``, ``bid_size``,
    ``ask_size`` lines.
    """

    lines = ("turnover", "bid", "ask", "bid_size", "ask_size", "side")
    params = (("name", None),)

    def __init__(self):
        super().__init__()
        if self.p.name is None:
            raise ValueError("EmbeddedData needs name=, one of feeds.list_embedded()")
        if self.p.name not in _BARS and self.p.name not in _TICKS:
            raise DataError(f"unknown embedded dataset {self.p.name!r}; "
                            f"choose from {list_embedded()}")
        # backtrader (resampledata, plots, its analyzers) reads the bar spacing from the
        # timeframe/compression params (dopostinit copies them to _timeframe/_compression):
        # set the true one unless the caller chose one.
        if self.p.timeframe == bt.TimeFrame.Days and self.p.compression == 1:
            self.p.timeframe, self.p.compression = embedded_timeframe(self.p.name)

    def _clean(self, df: pd.DataFrame) -> pd.DataFrame:
        if is_tick_dataset(self.p.name):  # events may share a stamp: the tick checks
            return clean_ticks(df, required=OHLCV, name=self._label())
        return df  # bars: load_embedded already passed them through clean_ohlcv

    def _frame(self) -> pd.DataFrame:
        return _as_bars(self.p.name, load_embedded(self.p.name))


def embedded_timeframe(name: str) -> tuple[int, int]:
    """backtrader's ``(timeframe, compression)`` of an embedded dataset."""
    if name in _TICKS:
        return bt.TimeFrame.Ticks, 1
    freq = _BARS[name][1]
    if freq is None:
        return bt.TimeFrame.Days, 1
    return bt.TimeFrame.Minutes, int(pd.Timedelta(freq) / pd.Timedelta(minutes=1))
