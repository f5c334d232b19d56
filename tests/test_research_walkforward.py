"""Walk-forward folds: the test blocks tile the test period, and every fold keeps train,
validation and test apart by the purge plus the embargo."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s4_strategies.training.research.walkforward import (
    Fold,
    Layout,
    check_folds,
    parse_span,
    walk_forward,
)

HOURLY = pd.date_range("2021-01-01", "2023-12-31 23:00", freq="h", tz="UTC")


def _invariants(folds, index, layout, warmup=0):
    gap = layout.purge + layout.embargo
    for f in folds:
        assert f.train[1] + gap <= f.val[0] and f.val[1] + gap <= f.test[0]
        assert f.train[1] - max(f.train[0], warmup) >= layout.min_train_bars
    bars = [b for f in folds for b in range(*f.test)]
    assert bars == list(range(folds[0].test[0], folds[-1].test[1]))  # no bar twice, no gap


def test_calendar_folds_cover_the_months_asked_for():
    layout = Layout(test_start="2022-01-01", test_end="2022-12-31", test_length="6M",
                    purge=24, embargo=24)
    folds = walk_forward(HOURLY, layout)
    assert len(folds) == 2
    first, second = (HOURLY[f.test[0]] for f in folds)
    assert str(first) == "2022-01-01 00:00:00+00:00" and str(second) == "2022-07-01 00:00:00+00:00"
    assert str(HOURLY[folds[-1].test[1] - 1]) == "2022-12-31 23:00:00+00:00"
    _invariants(folds, HOURLY, layout)
    # expanding: every fold trains from the first bar, on more bars than the last
    assert all(f.train[0] == 0 for f in folds) and folds[1].train[1] > folds[0].train[1]
    assert folds[0].val[1] == folds[0].test[0] - 48  # the gap is exactly purge + embargo


def test_rolling_folds_keep_their_training_length():
    layout = Layout(test_start="2022-01-01", test_end="2022-12-31", test_length=24 * 30,
                    scheme="rolling", train_length="6M", val_length="1M", purge=24)
    folds = walk_forward(HOURLY, layout)
    assert len(folds) == 13  # 365 days / 30-day blocks, the last one short
    assert folds[-1].test[1] - folds[-1].test[0] == 24 * 5
    for f in folds:
        assert 24 * 180 <= f.train[1] - f.train[0] <= 24 * 185
        assert 24 * 28 <= f.val[1] - f.val[0] <= 24 * 31
    assert folds[1].train[0] > folds[0].train[0]
    _invariants(folds, HOURLY, layout)


def test_too_little_training_data_names_the_fold():
    layout = Layout(test_start="2021-01-20", test_length="1M", purge=24, min_train_bars=500)
    with pytest.raises(ValueError, match="fold 0 .* training bars"):
        walk_forward(HOURLY, layout)
    # the feature warm-up does not count as training data
    layout = Layout(test_start="2021-03-01", test_end="2021-03-31", test_length="1M", purge=24,
                    min_train_bars=900)
    walk_forward(HOURLY, layout)
    with pytest.raises(ValueError, match="warm-up"):
        walk_forward(HOURLY, layout, warmup=400)


def test_check_folds_catches_overlap_gaps_and_leaks():
    a = Fold(train=(0, 100), val=(124, 150), test=(174, 200), number=0)
    check_folds([a, Fold(train=(0, 120), val=(144, 170), test=(200, 230), number=1)], 24)
    with pytest.raises(ValueError, match="overlap"):
        check_folds([a, Fold(train=(0, 120), val=(144, 170), test=(199, 230), number=1)], 24)
    with pytest.raises(ValueError, match="skip bars"):
        check_folds([a, Fold(train=(0, 120), val=(144, 170), test=(201, 230), number=1)], 24)
    with pytest.raises(ValueError, match="apart"):
        check_folds([a], 24, embargo=1)


def test_spans_and_layout_errors():
    assert parse_span(48) == 48 and parse_span("48") == 48
    assert parse_span("3M") == pd.DateOffset(months=3)
    assert parse_span("2w") == pd.DateOffset(weeks=2)
    for bad in ("3Q", "0M", "-5", 0, True, "month"):
        with pytest.raises(ValueError):
            parse_span(bad)
    with pytest.raises(ValueError, match="train_length"):
        Layout(test_start="2022-01-01", scheme="rolling")
    with pytest.raises(ValueError, match="scheme"):
        Layout(test_start="2022-01-01", scheme="anchored")
    with pytest.raises(ValueError, match="no bars"):
        walk_forward(HOURLY, Layout(test_start="2025-01-01"))


@settings(max_examples=40, deadline=None)
@given(start_day=st.integers(120, 600), length=st.sampled_from([240, 500, "7D", "1M", "2M"]),
       purge=st.integers(24, 100), embargo=st.integers(0, 100),
       rolling=st.booleans(), val=st.sampled_from([None, 300, "10D"]))
def test_any_layout_keeps_the_invariants(start_day, length, purge, embargo, rolling, val):
    start = (HOURLY[0] + pd.Timedelta(days=start_day)).strftime("%Y-%m-%d")
    end = (HOURLY[0] + pd.Timedelta(days=start_day + 200)).strftime("%Y-%m-%d")
    layout = Layout(test_start=start, test_end=end, test_length=length, purge=purge,
                    embargo=embargo, scheme="rolling" if rolling else "expanding",
                    train_length="60D" if rolling else None, val_length=val,
                    min_train_bars=200)
    folds = walk_forward(HOURLY, layout)
    _invariants(folds, HOURLY, layout)
    assert HOURLY[folds[0].test[0]] >= pd.Timestamp(start, tz="UTC")
