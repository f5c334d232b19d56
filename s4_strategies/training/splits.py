"""Splits by date with a purge gap, and expanding walk-forward folds.

Train, validation and test never overlap, and ``purge`` bars (at least the labels' longest
horizon) separate them so that no training label reads a price the next period scores on.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from feeds.bartime import utc_timestamp


@dataclass(frozen=True)
class Split:
    """Half-open bar-position ranges [start, stop) into one frame."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int] | None = None

    def dates(self, index: pd.DatetimeIndex) -> dict:
        def span(r):
            return None if r is None else [str(index[r[0]]), str(index[r[1] - 1])]

        return {"train": span(self.train), "val": span(self.val), "test": span(self.test)}


def _pos(index: pd.DatetimeIndex, when, side="left") -> int:
    return int(index.searchsorted(utc_timestamp(when), side=side))


def _end_pos(index: pd.DatetimeIndex, when) -> int:
    """Position after the last bar at or before ``when``; a bare date includes its whole day."""
    if isinstance(when, str) and len(when.strip()) <= 10:
        return _pos(index, pd.Timestamp(when) + pd.Timedelta(days=1), side="left")
    return _pos(index, when, side="right")


def date_split(index: pd.DatetimeIndex, train_from, train_to, *, purge: int,
               val_fraction: float = 0.15, test_from=None, test_to=None) -> Split:
    """Train and validation inside [train_from, train_to], an optional test period after.

    The last ``val_fraction`` of the period is validation; ``purge`` bars (at least the
    longest label horizon) separate train from validation and validation from test, so no
    training label reads a price that the next period scores on.
    """
    lo, hi = _pos(index, train_from), _end_pos(index, train_to)
    if hi - lo < 10 * purge:
        raise ValueError(f"the training period holds {hi - lo} bars: too few for purge {purge}")
    n_val = max(int((hi - lo) * val_fraction), purge)
    val = (hi - n_val, hi)
    train = (lo, val[0] - purge)
    test = None
    if test_from is not None:
        t0 = max(_pos(index, test_from), hi + purge)
        t1 = _end_pos(index, test_to) if test_to is not None else len(index)
        if t1 <= t0:
            raise ValueError("the test period is empty after the purge gap")
        test = (t0, t1)
    return Split(train=train, val=val, test=test)


def walk_forward_splits(index: pd.DatetimeIndex, *, n_folds: int, test_bars: int,
                        purge: int, val_fraction: float = 0.15, min_train: int = 2000):
    """Expanding-window folds: each fold trains on everything before its test block."""
    n = len(index)
    first_test = n - n_folds * test_bars
    if first_test < min_train:
        raise ValueError("not enough bars for that many folds")
    for k in range(n_folds):
        t0 = first_test + k * test_bars
        end = t0 - purge
        n_val = max(int(end * val_fraction), purge)
        val = (end - n_val, end)
        yield Split(train=(0, val[0] - purge), val=val, test=(t0, min(n, t0 + test_bars)))
