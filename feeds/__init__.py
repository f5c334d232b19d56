"""backtrader data feeds: embedded real market data, Bybit (pybit) and Yahoo Finance."""

from .arrayfeed import ArrayData
from .bartime import EPOCH_ORDINAL, index_to_num, num_to_index, to_utc_index, utc_timestamp
from .bybit import BybitData, fetch_bybit_klines, load_bybit_klines
from .cache import CacheWarning
from .embedded import EmbeddedData, bar_frequency, is_tick_dataset, list_embedded, load_embedded
from .errors import DataError, FeedError
from .live import KlineStream, parse_kline_message
from .ticks import TICK_LINES, TickData, load_ticks, merge_ticks
from .validate import clean_ohlcv, find_gaps
from .yahoo import YFinanceData, fetch_yfinance, load_yfinance

__all__ = [
    "BybitData",
    "CacheWarning",
    "KlineStream",
    "TICK_LINES",
    "TickData",
    "load_ticks",
    "merge_ticks",
    "YFinanceData",
    "fetch_bybit_klines",
    "fetch_yfinance",
    "load_bybit_klines",
    "load_yfinance",
    "parse_kline_message",
    "ArrayData",
    "EPOCH_ORDINAL",
    "num_to_index",
    "DataError",
    "EmbeddedData",
    "FeedError",
    "bar_frequency",
    "clean_ohlcv",
    "find_gaps",
    "index_to_num",
    "to_utc_index",
    "utc_timestamp",
    "is_tick_dataset",
    "list_embedded",
    "load_embedded",
]
