"""Exceptions raised by the feeds. Every one says what was wrong and where."""


class DataError(ValueError):
    """Market data that cannot be used as given (malformed, dirty or empty)."""


class FeedError(RuntimeError):
    """A data source failed (API error, rate limit after retries, bad response)."""


class ExchangeError(FeedError):
    """The exchange refused a request or answered something unreadable (trading, not data).

    ``code`` is Bybit's ``retCode`` when there is one (e.g. 110007: not enough balance)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code
