"""backtrader data feeds: embedded real market data, Bybit (pybit) and Yahoo Finance.

Names are imported on first use, so ``import feeds.bartime`` (pure pandas) does not pull in
backtrader, pybit or yfinance.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "ArrayData": "arrayfeed",
    "EPOCH_ORDINAL": "bartime",
    "index_to_num": "bartime",
    "num_to_index": "bartime",
    "to_utc_index": "bartime",
    "utc_timestamp": "bartime",
    "BybitData": "bybit",
    "BybitBroker": "bybit_broker",
    "BybitStore": "bybit_store",
    "Instrument": "bybit_orders",
    "fetch_bybit_klines": "bybit_rest",
    "load_bybit_klines": "bybit_rest",
    "CacheWarning": "cache",
    "fetch_funding_rates": "funding",
    "load_funding_rates": "funding",
    "EmbeddedData": "embedded",
    "bar_frequency": "embedded",
    "is_tick_dataset": "embedded",
    "list_embedded": "embedded",
    "load_embedded": "embedded",
    "DataError": "errors",
    "ExchangeError": "errors",
    "FeedError": "errors",
    "KlineStream": "live",
    "parse_kline_message": "live",
    "TICK_LINES": "ticks",
    "TickData": "ticks",
    "load_ticks": "ticks",
    "merge_ticks": "ticks",
    "clean_ohlcv": "validate",
    "find_gaps": "validate",
    "YFinanceData": "yahoo",
    "fetch_yfinance": "yahoo",
    "load_yfinance": "yahoo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
