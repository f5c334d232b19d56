"""Exceptions raised by the feeds. Every one says what was wrong and where."""


class DataError(ValueError):
    """Market data that cannot be used as given (malformed, dirty or empty)."""


class FeedError(RuntimeError):
    """A data source failed (API error, rate limit after retries, bad response)."""
