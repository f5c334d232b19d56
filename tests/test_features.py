import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.features import (
    FeatureSpec,
    FeatureStream,
    LabelSpec,
    Normalizer,
    bar_spacing,
    make_features,
    make_labels,
    signal_values,
)


@pytest.fixture(scope="module")
def btc():
    return feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-03-31")


def test_names_and_shape(btc):
    spec = FeatureSpec()
    f = make_features(btc, spec)
    assert list(f.columns) == spec.names
    assert f.index.equals(btc.index)
    # Defined after the warm-up, never infinite.
    tail = f.iloc[spec.warmup :]
    assert np.isfinite(tail.to_numpy()).all()


def test_no_look_ahead(btc):
    """Changing bars after t changes no feature at or before t."""
    spec = FeatureSpec()
    base = make_features(btc, spec)
    rng = np.random.default_rng(0)
    for t in (200, 777, len(btc) - 50):
        changed = btc.copy()
        future = changed.index[t + 1 :]
        scale = rng.uniform(0.5, 2.0, size=len(future))
        for col in ("open", "high", "low", "close"):
            changed.loc[future, col] = changed.loc[future, col] * scale
        changed.loc[future, "volume"] = rng.uniform(0, 1e4, size=len(future))
        after = make_features(changed, spec)
        pd.testing.assert_frame_equal(after.iloc[: t + 1], base.iloc[: t + 1])
        assert not np.allclose(after.iloc[t + 30 :].fillna(0), base.iloc[t + 30 :].fillna(0))


def test_no_look_ahead_by_truncation(btc):
    """Features computed on bars[:t+1] equal the full computation's row t."""
    spec = FeatureSpec()
    full = make_features(btc, spec)
    for t in (10, 300, 1000):
        part = make_features(btc.iloc[: t + 1], spec)
        np.testing.assert_allclose(
            part.iloc[-1].to_numpy(), full.iloc[t].to_numpy(), rtol=1e-12, atol=1e-12
        )


@pytest.mark.parametrize("name", ["bybit:BTCUSDT:60", "yahoo:SPY:1d"])
def test_stream_equals_batch(name):
    df = feeds.load_embedded(name).iloc[:3000]
    spec = FeatureSpec()
    batch = make_features(df, spec).to_numpy()
    stream = FeatureStream(spec)
    hours = df.index.hour + df.index.minute / 60.0
    rows = [
        stream.update(o, h, l, c, v, hr, dw).copy()
        for o, h, l, c, v, hr, dw in zip(
            df.open, df.high, df.low, df.close, df.volume, hours, df.index.day_of_week
        )
    ]
    rows = np.array(rows)
    assert np.array_equal(np.isnan(rows), np.isnan(batch))
    np.testing.assert_allclose(rows, batch, rtol=1e-9, atol=1e-10, equal_nan=True)


def test_stream_state_roundtrip(btc):
    spec = FeatureSpec()
    a, b = FeatureStream(spec), FeatureStream(spec)
    bars = btc.iloc[:500]
    for row in bars.itertuples():
        a.update(row.open, row.high, row.low, row.close, row.volume)
    b.set_state(a.get_state())
    nxt = btc.iloc[500]
    x = a.update(nxt.open, nxt.high, nxt.low, nxt.close, nxt.volume).copy()
    y = b.update(nxt.open, nxt.high, nxt.low, nxt.close, nxt.volume).copy()
    np.testing.assert_array_equal(x, y)


def test_spec_roundtrip_and_validation():
    spec = FeatureSpec(return_windows=(1, 2), time_features=False)
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown feature spec"):
        FeatureSpec.from_dict({**spec.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="positive windows"):
        FeatureSpec(vol_windows=(0,))


def test_normalizer_fits_train_only(btc):
    f = make_features(btc, FeatureSpec()).dropna()
    train, test = f.iloc[:1000], f.iloc[1000:]
    norm = Normalizer.fit(train)
    z = norm.transform(train)
    np.testing.assert_allclose(z.mean().to_numpy(), 0, atol=0.05)
    assert Normalizer.from_dict(norm.to_dict()) == norm
    assert norm.transform(test).shape == test.shape


def test_labels(btc):
    spec = LabelSpec(horizons=(1, 5), signal_horizon=5, vol_horizon=24)
    lab = make_labels(btc, spec)
    c = btc["close"].to_numpy()
    np.testing.assert_allclose(lab["fwd_5"].iloc[100], np.log(c[105] / c[100]))
    assert lab["fwd_5"].iloc[-5:].isna().all() and lab["log_vol"].iloc[-24:].isna().all()
    classes = lab["signal"].dropna().unique()
    assert set(classes) == {0.0, 1.0, 2.0}
    # Class follows the sign of the forward return.
    up = lab["signal"] == 2
    assert (lab.loc[up, "fwd_5"] > 0).all()
    assert spec.max_horizon == 24
    five = make_labels(btc, LabelSpec(n_classes=5, thresholds=(0.5, 1.5)))
    assert set(five["signal"].dropna().unique()) == {0.0, 1.0, 2.0, 3.0, 4.0}
    np.testing.assert_array_equal(signal_values(5), [-2, -1, 0, 1, 2])


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="missing"):
        make_features(pd.DataFrame({"close": [1.0]}, index=pd.DatetimeIndex(["2021-01-01"])))
    idx = feeds.load_embedded("yahoo:SPY:1d").index
    assert bar_spacing(idx) == pd.Timedelta("1D")
