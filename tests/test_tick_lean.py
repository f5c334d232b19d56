"""The tick lean: causal microstructure features (closed forms, a poisoned future), streaming ==
batch, walk-forward folds that never overlap, the indicator == the model's parallel view,
the gate, the checkpoint and a training smoke test."""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch

from feeds.bartime import num_to_index
from feeds.ticks import TickData, load_ticks
from s4_strategies.features.tick import (
    TickFeatureSpec,
    event_ofi,
    ew_mean,
    ew_sum,
    grid_aggregates,
    grid_steps,
    scaled,
    tick_features,
    tick_labels,
)
from s4_strategies.features.tick_stream import TickFeatureStream
from s4_strategies.indicators import TickLeanIndicator
from s4_strategies.indicators.tick_lean import tick_lean_params
from s4_strategies.model.tick_lean import TickLeanPredictor, load_tick_lean, save_tick_lean
from s4_strategies.ssm import build_model
from s4_strategies.training import tick_lean as tl
from s4_strategies.training.splits import Split

SPEC = TickFeatureSpec(tick=0.1, warmup_s=2.0)


@pytest.fixture(scope="module")
def events():
    return load_ticks("binance-usdm:BTCUSDT", max_events=3000)  # ~14 s


def _predictor(has_skill: bool = True, seed: int = 0) -> TickLeanPredictor:
    torch.manual_seed(seed)
    model = build_model("s4d", input_dim=len(SPEC.names), d_model=8, d_state=8, n_layers=2,
                        dropout=0.0, horizons=(SPEC.horizon_steps,))
    return TickLeanPredictor(model, SPEC, return_scale=1e-4, slope=0.5,
                             gate={"has_skill": has_skill, "rule": "test"})


# -- features ------------------------------------------------------------------------------
def test_event_ofi_matches_cont_kukanov_stoikov_cases():
    # bid up (+B_n), bid same with size 5->7 (+2), bid down (-B_{n-1}); ask unchanged
    e = event_ofi([10, 11, 11, 10], [12, 12, 12, 12], [5, 5, 7, 3], [4, 4, 4, 4])
    np.testing.assert_allclose(e, [0, 5, 2, -7])
    # ask down (-A_n), ask same 4->1 (+3), ask up (+A_{n-1})
    e = event_ofi([10, 10, 10, 10], [12, 11, 11, 12], [5, 5, 5, 5], [4, 2, 1, 6])
    np.testing.assert_allclose(e, [0, -2, 1, 1])


def test_ew_helpers_closed_form():
    x = np.array([1.0, 2.0, -1.0, 3.0])
    lam = 0.5
    np.testing.assert_allclose(ew_sum(x, lam), [1, 2.5, 0.25, 3.125])
    np.testing.assert_allclose(ew_mean(x, lam)[-1], 3.125 / (1 + 0.5 + 0.25 + 0.125))
    z = scaled(x, lam, clip=100.0)
    assert z[0] == 0.0
    assert z[2] == pytest.approx(-1.0 / math.sqrt((4 + 0.5) / 1.5))  # past x^2 only


def test_grid_steps_put_an_event_on_a_grid_time_in_that_step():
    g = 100_000_000
    origin, k = grid_steps(np.array([5 * g - 7, 5 * g, 5 * g + 1, 7 * g]), g)
    assert origin == 5 * g
    assert k.tolist() == [0, 0, 1, 2]


def test_features_and_labels_do_not_read_the_future(events):
    base = tick_features(events, SPEC)
    agg = grid_aggregates(events, SPEC)
    lab = tick_labels(agg, SPEC)
    cut = events.index[len(events) // 2]
    poisoned = events.copy()
    late = poisoned.index > cut
    rng = np.random.default_rng(0)
    n = int(late.sum())
    poisoned.loc[late, "bid"] = 50_000 + rng.normal(0, 500, n).round(1)
    poisoned.loc[late, "ask"] = poisoned.loc[late, "bid"] + 0.1 * rng.integers(1, 9, n)
    poisoned.loc[late, "mid"] = 0.5 * (poisoned.loc[late, "bid"] + poisoned.loc[late, "ask"])
    poisoned.loc[late, "bid_size"] = rng.exponential(3, n)
    poisoned.loc[late, "trade_side"] = rng.choice([1.0, -1.0, np.nan], n)
    poisoned.loc[late, "volume"] = rng.exponential(1, n)
    after = tick_features(poisoned, SPEC)
    lab2 = tick_labels(grid_aggregates(poisoned, SPEC), SPEC)
    past = base.index < cut  # grid times before the first poisoned event
    assert past.sum() > 50 and (~past).sum() > 50
    pd.testing.assert_frame_equal(base[past], after[past])
    assert not np.allclose(base[~past].to_numpy(), after[~past].to_numpy())
    known = base.index + pd.Timedelta(seconds=SPEC.horizon_s) < cut  # labels end before it
    pd.testing.assert_frame_equal(lab[known], lab2[known])


@pytest.mark.parametrize("name", ["binance-usdm:BTCUSDT", "binance:BTCUSDT"])
def test_streaming_features_equal_batch(name):
    ev = load_ticks(name, max_events=3000)
    spec = TickFeatureSpec(tick=0.1 if "usdm" in name else 0.01)
    batch = tick_features(ev, spec).to_numpy()
    stream = TickFeatureStream(spec)
    t_ns = ev.index.as_unit("ns").asi8
    cols = [ev[c].to_numpy(float) for c in ("bid", "ask", "bid_size", "ask_size", "mid",
                                            "trade_side", "volume")]
    rows = []
    for i, t in enumerate(t_ns):
        rows += stream.update(int(t), *(c[i] for c in cols))
    rows += stream.flush()
    np.testing.assert_allclose(np.array(rows), batch, rtol=0, atol=1e-12)


# -- walk-forward --------------------------------------------------------------------------
def test_walk_forward_folds_are_disjoint_and_purged():
    n = 3445
    d = tl.TickData(np.zeros((n, 3)), np.zeros(n), np.zeros(n), np.zeros(n), np.ones(n, bool),
                    pd.date_range("2024-08-08", periods=n, freq="100ms", tz="UTC"))
    spec = TickFeatureSpec()
    folds = tl.folds_for(d, spec, tl.TickLeanConfig())
    h = spec.horizon_steps
    assert len(folds) == 4
    for f in folds:
        assert f.train[0] < f.train[1] <= f.val[0] - h
        assert f.val[0] < f.val[1] <= f.test[0] - h
    tests = [f.test for f in folds]
    assert all(a[1] == b[0] for a, b in zip(tests, tests[1:]))  # consecutive, no overlap
    assert tests[-1][1] == n and tests[0][0] >= 0.4 * n - 1
    final = tl.final_split(n, spec, 0.2)
    assert final.train[1] + h <= final.val[0] and final.val[1] == n - h


# -- the indicator -------------------------------------------------------------------------
class _Record(bt.Strategy):
    params = dict(model=None, gate=True)

    def __init__(self):
        self.ind = TickLeanIndicator(self.data, model=self.p.model, gate=self.p.gate)
        self.values, self.times = [], []

    def prenext(self):
        self.next()

    def next(self):
        self.values.append(self.ind.pred_return[0])
        self.times.append(self.data.datetime[0])


def _run(events, predictor, gate=True, runonce=True):
    cerebro = bt.Cerebro(stdstats=False, runonce=runonce)
    cerebro.adddata(TickData(dataname=events))
    cerebro.addstrategy(_Record, model=predictor, gate=gate)
    strat = cerebro.run()[0]
    return np.array(strat.values), np.array(strat.times)


@pytest.mark.parametrize("runonce", [True, False])
def test_indicator_equals_the_models_parallel_view(events, runonce):
    pred = _predictor()
    got, nums = _run(events, pred, runonce=runonce)
    assert len(got) == len(events)
    seen = events.set_axis(num_to_index(nums))  # the times the indicator saw (ms)
    batch = pred.predict_features(tick_features(seen, SPEC).to_numpy())  # parallel (FFT) view
    _, k = grid_steps(seen.index.as_unit("ns").asi8, SPEC.grid_ns)
    want = np.where(k - 1 >= SPEC.warmup, batch[np.maximum(k - 1, 0)], np.nan)
    assert np.isfinite(want).sum() > 1000
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    assert np.nanstd(got) > 0


def test_gate_emits_zero_without_skill(events):
    pred = _predictor(has_skill=False)
    got, _ = _run(events.iloc[:800], pred)
    assert np.all(got == 0.0)
    ungated, _ = _run(events.iloc[:800], pred, gate=False)
    assert np.nanmax(np.abs(ungated)) > 0
    assert pred.predict(events)["lean"].dropna().eq(0).all()


def test_checkpoint_loads_weights_only(tmp_path, events):
    pred = _predictor()
    path = save_tick_lean(tmp_path / "lean.pt", pred)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "s4-tick-lean/1" and payload["gate"]["has_skill"] is True
    back = load_tick_lean(path)
    x = tick_features(events, SPEC).to_numpy()
    np.testing.assert_allclose(back.predict_features(x), pred.predict_features(x), rtol=1e-12)
    assert back.horizon_s == SPEC.horizon_s and back.scale == pred.scale


def test_strategy_leans_on_the_indicator(events):
    from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

    pred = _predictor()
    params = tick_lean_params(pred, gate=True)
    assert params["trend_horizon"] == SPEC.horizon_s
    cerebro = bt.Cerebro(stdstats=False)
    data = TickData(dataname=events.iloc[:1500])
    cerebro.adddata(data)
    cerebro.addstrategy(AvellanedaStoikovStrategy, sigma=0.5, A=1.0, kappa=5.0, tick=0.1,
                        lot=0.01, size_step=0.001, **params)
    strat = cerebro.run()[0]
    book = strat._books[strat.datas[0]]
    assert isinstance(book.indicator, TickLeanIndicator)
    assert strat.quotes()["lean"] != 0.0


# -- training ------------------------------------------------------------------------------
def test_training_smoke(events, tmp_path):
    torch.set_num_threads(1)
    cfg = tl.TickLeanConfig(n_folds=2, first_test=0.5, n_boot=20)
    cfg.train.epochs, cfg.train.steps_per_epoch, cfg.train.batch_size = 1, 2, 2
    cfg.train.seq_len, cfg.train.burn_in, cfg.train.d_model = 24, 4, 4
    res = tl.train_tick_lean(events, cfg, SPEC, data_name="test")
    assert len(res.folds) == 2 and isinstance(res.has_skill, bool)
    assert {"s4d", "ridge", "ema_lean"} <= set(res.pooled)
    assert "| pooled |" in res.table()
    assert res.predictor.gate["has_skill"] == res.has_skill
    assert isinstance(res.splits[0], Split)
    back = load_tick_lean(save_tick_lean(tmp_path / "smoke.pt", res.predictor))
    assert back.has_skill == res.has_skill
