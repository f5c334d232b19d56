"""Baselines tuned on validation (training.tuned_baselines): the penalty follows the signal,
LightGBM early-stops on validation and finds what a line cannot, no test row is read."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s4_strategies.training import skill
from s4_strategies.training.tuned_baselines import (
    LIGHTGBM,
    LINEAR,
    PENALTY_GRID,
    baseline_forecasts,
    lightgbm_forecasts,
    tuned_linear,
)

TRAIN, VAL, TEST = slice(20, 1200), slice(1250, 1600), slice(1650, 2000)


def _data(signal: float, nonlinear: bool = False, n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:20] = np.nan  # the warm-up: no forecast
    z = np.nan_to_num(x[:, 0])
    drive = np.abs(z) - 0.8 if nonlinear else z
    fwd = signal * drive + rng.normal(size=n)
    y = {"signal": np.digitize(fwd, [-0.5, 0.5]).astype(float), "fwd_1": fwd,
         "fwd_5": fwd + rng.normal(size=n), "log_vol": 0.5 * signal * z + rng.normal(size=n)}
    return x, y


def test_the_penalty_is_chosen_on_validation_and_follows_the_signal():
    x, y = _data(0.0)
    _, noise = tuned_linear(x, y, TRAIN, VAL, 3, (1, 5))
    x2, y2 = _data(1.0)
    fc, strong = tuned_linear(x2, y2, TRAIN, VAL, 3, (1, 5))
    assert set(strong) == {"probs", "ret_1", "ret_5", "log_vol"}
    assert all(lam in PENALTY_GRID for lam in (*noise.values(), *strong.values()))
    assert strong["ret_1"] < noise["ret_1"]  # a real slope is kept, noise is shrunk away
    assert np.isnan(fc["ret_1"][:20]).all() and np.isfinite(fc["probs"][20:]).all()
    assert fc["probs"][20:].sum(axis=1) == pytest.approx(1.0)
    assert skill.spearman_ic(fc["ret_1"][TEST], y2["fwd_1"][TEST]) > 0.5
    # the test rows are never read: changing their targets changes nothing
    y3 = {k: v.copy() for k, v in y2.items()}
    for v in y3.values():
        v[TEST] = np.random.default_rng(9).permutation(v[TEST])
    again, _ = tuned_linear(x2, y3, TRAIN, VAL, 3, (1, 5))
    assert np.array_equal(again["ret_5"], fc["ret_5"], equal_nan=True)


def test_lightgbm_finds_what_a_line_cannot():
    x, y = _data(1.0, nonlinear=True, seed=2)
    lin, _ = tuned_linear(x, y, TRAIN, VAL, 3, (1, 5))
    gbm, info = lightgbm_forecasts(x, y, TRAIN, VAL, 3, (1, 5),
                                   {"num_leaves": 7, "learning_rate": 0.1})
    ic = {k: skill.spearman_ic(f["ret_1"][TEST], y["fwd_1"][TEST])
          for k, f in (("lin", lin), ("gbm", gbm))}
    assert ic["gbm"] > 0.3 > abs(ic["lin"])
    trees, loss = info["ret_1"]
    assert 1 <= trees < 400 and loss > 0  # early-stopped on validation
    with pytest.raises(ValueError, match="num_leafs"):
        lightgbm_forecasts(x, y, TRAIN, VAL, 3, (1,), {"num_leafs": 7})


def test_every_baseline_row():
    x, y = _data(0.5, seed=3)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.01, len(x))))
    bars = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close})
    fc = baseline_forecasts(x, y, bars, TRAIN, VAL, 3, 24, (1, 24, 168), (1, 5),
                            lightgbm=True)
    assert list(fc) == ["Majority class", "Class prior", LINEAR, LIGHTGBM,
                        "Trailing vol (24 bars)", "EWMA", "HAR"]
    assert fc["EWMA"]["chosen"]["lambda"] in (0.9, 0.94, 0.97, 0.98, 0.99)
    assert sum(fc["HAR"]["chosen"]["weights"].values()) == pytest.approx(1.0, abs=1e-3)
