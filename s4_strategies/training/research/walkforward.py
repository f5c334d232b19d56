"""Walk-forward folds for research: expanding or rolling training, calendar or bar test
blocks that tile the test period (no bar tested twice, no bar skipped), and a gap of
``purge + embargo`` bars between training and validation and between validation and test.

``purge`` must be at least the labels' longest horizon (a training label at bar t reads
prices up to t + horizon, which must not reach the next period); ``embargo`` is the extra
safety margin on top of it (López de Prado, AFML ch. 7). Lengths are bars (an int) or a
calendar span: ``"90D"``, ``"3M"``, ``"1Y"``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import pandas as pd

from feeds.bartime import utc_timestamp

from ..splits import Split

_SPAN = re.compile(r"^\s*(\d+)\s*([DWMY])\s*$", re.IGNORECASE)


def parse_span(value) -> int | pd.DateOffset:
    """``int`` bars, or a calendar span ``"<n>D|W|M|Y"`` as a ``pd.DateOffset``."""
    if isinstance(value, bool):
        raise ValueError(f"a length must be bars (int) or a span like '3M', got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        n = int(value)
        if n < 1:
            raise ValueError(f"a length in bars must be >= 1, got {n}")
        return n
    m = _SPAN.match(str(value))
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"a length must be bars (int) or a span like '90D', '3M', '1Y'; "
                         f"got {value!r}")
    n, unit = int(m.group(1)), m.group(2).upper()
    return {"D": pd.DateOffset(days=n), "W": pd.DateOffset(weeks=n),
            "M": pd.DateOffset(months=n), "Y": pd.DateOffset(years=n)}[unit]


@dataclass(frozen=True)
class Layout:
    """The walk-forward layout of a research spec."""

    test_start: str
    test_end: str | None = None
    test_length: str | int = "3M"
    scheme: str = "expanding"  # or "rolling": the last ``train_length`` before validation
    train_length: str | int | None = None
    val_length: str | int | None = None  # else ``val_fraction`` of the bars before the test
    val_fraction: float = 0.15
    purge: int = 24
    embargo: int = 0
    min_train_bars: int = 500

    def __post_init__(self):
        if self.scheme not in ("expanding", "rolling"):
            raise ValueError(f"scheme must be 'expanding' or 'rolling', got {self.scheme!r}")
        if self.scheme == "rolling" and self.train_length is None:
            raise ValueError("a rolling layout needs train_length")
        if self.purge < 0 or self.embargo < 0:
            raise ValueError("purge and embargo are bar counts >= 0")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("test_length", "train_length", "val_length"):
            if getattr(self, name) is not None:
                parse_span(getattr(self, name))

    @property
    def gap(self) -> int:
        return self.purge + self.embargo

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Fold(Split):
    """A walk-forward fold: :class:`Split` positions plus its number."""

    number: int = 0


def _pos(index, when) -> int:
    return int(index.searchsorted(utc_timestamp(when), side="left"))


def _back(index, end: int, span) -> int:
    """Position of the first bar of a span of length ``span`` ending before ``end``."""
    if isinstance(span, int):
        return max(0, end - span)
    if end <= 0:
        return 0
    return int(index.searchsorted(index[end - 1] - span, side="right"))  # after last − span


def _test_edges(index: pd.DatetimeIndex, layout: Layout) -> list[int]:
    lo = _pos(index, layout.test_start)
    if layout.test_end is None:
        hi = len(index)
    elif isinstance(layout.test_end, str) and len(layout.test_end.strip()) <= 10:
        hi = _pos(index, pd.Timestamp(layout.test_end) + pd.Timedelta(days=1))
    else:
        hi = int(index.searchsorted(utc_timestamp(layout.test_end), side="right"))
    if hi <= lo:
        raise ValueError(f"no bars in the test period {layout.test_start} .. {layout.test_end}")
    step = parse_span(layout.test_length)
    if isinstance(step, int):
        edges = list(range(lo, hi, step))
    else:
        edges, t = [], utc_timestamp(layout.test_start)
        while True:
            p = _pos(index, t)
            if p >= hi:
                break
            if not edges or p > edges[-1]:
                edges.append(p)
            t = t + step
    return edges + [hi]


def walk_forward(index: pd.DatetimeIndex, layout: Layout, warmup: int = 0) -> list[Fold]:
    """The folds of ``layout`` on the bars ``index``; their test blocks tile the test period.
    ``warmup``: leading bars whose features are not yet defined (they do not count as
    training bars). Raises ``ValueError`` naming the fold when one has too little training
    data."""
    edges = _test_edges(index, layout)
    folds = []
    for k, (t0, t1) in enumerate(zip(edges[:-1], edges[1:])):
        val_end = t0 - layout.gap
        if layout.val_length is not None:
            val_start = _back(index, val_end, parse_span(layout.val_length))
        else:
            first = 0 if layout.scheme == "expanding" else None
            if first is None:
                first = _back(index, val_end, parse_span(layout.train_length))
            val_start = val_end - max(int((val_end - first) * layout.val_fraction), 1)
        train_end = val_start - layout.gap
        if layout.scheme == "rolling":
            train_start = _back(index, train_end, parse_span(layout.train_length))
        else:
            train_start = 0
        n_train = train_end - max(train_start, warmup)
        if n_train < layout.min_train_bars or val_end <= val_start:
            raise ValueError(
                f"fold {k} (test from {index[t0]}) has {max(n_train, 0)} training bars after "
                f"the {warmup}-bar feature warm-up, fewer than min_train_bars="
                f"{layout.min_train_bars}: start the test period later")
        folds.append(Fold(train=(train_start, train_end), val=(val_start, val_end),
                          test=(t0, t1), number=k))
    check_folds(folds, layout.purge, layout.embargo)
    return folds


def check_folds(folds: list[Split], purge: int, embargo: int = 0) -> None:
    """Raise ``ValueError`` unless every fold keeps train < val < test apart by at least
    ``purge + embargo`` bars and the test blocks tile one range (no overlap, no gap)."""
    gap = purge + embargo
    for k, f in enumerate(folds):
        if f.train[1] + gap > f.val[0] or f.val[1] + gap > f.test[0]:
            raise ValueError(f"fold {k}: train {f.train}, val {f.val}, test {f.test} are not "
                             f"{gap} bars apart (purge {purge} + embargo {embargo})")
        if not (f.train[0] < f.train[1] and f.val[0] < f.val[1] and f.test[0] < f.test[1]):
            raise ValueError(f"fold {k} has an empty period: {f}")
        if k and f.test[0] != folds[k - 1].test[1]:
            raise ValueError(f"fold {k} test starts at bar {f.test[0]}, not where fold {k - 1}"
                             f" ends ({folds[k - 1].test[1]}): stitched tests would "
                             f"{'overlap' if f.test[0] < folds[k - 1].test[1] else 'skip bars'}")


def describe(folds: list[Fold], index: pd.DatetimeIndex) -> list[dict]:
    """Each fold's periods as dates (first and last bar)."""
    return [{"fold": f.number, **f.dates(index)} for f in folds]
