"""backtrader data feeds: embedded real market data, Bybit (pybit) and Yahoo Finance."""

from .arrayfeed import ArrayData, index_to_num
from .embedded import EmbeddedData, bar_frequency, is_tick_dataset, list_embedded, load_embedded
from .errors import DataError, FeedError
from .validate import clean_ohlcv, find_gaps

__all__ = [
    "ArrayData",
    "DataError",
    "EmbeddedData",
    "FeedError",
    "bar_frequency",
    "clean_ohlcv",
    "find_gaps",
    "index_to_num",
    "is_tick_dataset",
    "list_embedded",
    "load_embedded",
]
