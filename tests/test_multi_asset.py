"""The multi-asset model (``MultiAssetS4``) end to end on BTC/ETH/SOL hourly: training with a
late starter (SOLUSDT lists on 2021-10-15), checkpoints, stream == batch, backtrader."""

from __future__ import annotations

import datetime as dt

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch

import feeds
from s4_strategies import S4MultiAssetStrategy
from s4_strategies.indicators.multi import as_multi_predictor
from s4_strategies.model import CheckpointError
from s4_strategies.model.multi import FORMAT, MultiPredictor, panel
from s4_strategies.training.fit import TrainConfig
from s4_strategies.training.multi_asset import (
    frames_from,
    load_multi,
    prepare_panel,
    save_multi,
    train_multi,
)
from s4_strategies.training.splits import date_split

NAMES = ["bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60"]
torch.set_num_threads(1)
SOL, SOL_START = NAMES[2], pd.Timestamp("2021-10-15", tz="UTC")


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    frames = frames_from(NAMES, "2021-06-01", "2021-12-31")
    cfg = TrainConfig(layer="s4d", d_model=8, d_state=8, n_layers=1, dropout=0.0, epochs=3,
                      steps_per_epoch=5, batch_size=4, seq_len=128, burn_in=32, lr=5e-3,
                      ssm_lr=2.5e-3, patience=3, progress=False)
    return train_multi(frames, ("2021-06-01", "2021-12-31"), cfg), frames


def test_training_lowers_validation_loss(trained):
    result, _ = trained
    meta = result.meta
    initial = meta["recipe"]["initial_val_losses"]
    assert min(h["val_total"] for h in result.history) < initial["total"]
    # the epoch kept has the best mean next-bar IC over the assets (the default criterion)
    assert meta["best_val_loss"] == -max(h["val_next_bar_ic"] for h in result.history)
    assert meta["recipe"]["criterion"].endswith("(mean over assets)")
    assert meta["recipe"]["steps_taken"] > 0 and meta["first_bars"][SOL].startswith("2021-10-15")
    for h in result.history:
        assert all(np.isfinite(v) for k, v in h.items() if k.startswith("val_"))
        assert "val_weights" in h
    p = result.predictor
    assert p.assets == NAMES and p.model.config["kind"] == "multi"
    # each asset is standardised with its own statistics
    assert not np.allclose(p.normalizers[0].mean, p.normalizers[2].mean)


def test_late_starter_is_zero_and_masked_until_warm(trained):
    result, frames = trained
    index, reindexed = panel(frames)
    assert reindexed[SOL]["close"].isna().sum() == (index < SOL_START).sum()
    split = date_split(index, "2021-06-01", "2021-12-31", purge=result.predictor.label_spec
                       .max_horizon)
    x, y, valid, norms, targets = prepare_panel(frames, split, index,
                                                result.predictor.feature_spec,
                                                result.predictor.label_spec)
    warm_from = index.get_loc(SOL_START) + result.predictor.feature_spec.warmup
    assert not valid[:warm_from, 2].any() and valid[warm_from:, 2].all()
    assert (x[:warm_from, 2] == 0).all() and (x[warm_from:, 2] != 0).any()
    assert valid[:, 0].sum() == len(index) - result.predictor.feature_spec.warmup
    assert len(norms) == len(targets) == 3 and y["returns"].shape[1:] == (3, 3)


def test_checkpoint_round_trip(trained, tmp_path):
    result, frames = trained
    short = {k: v.loc["2021-10-01":"2021-11-15"] for k, v in frames.items()}
    path = save_multi(result, tmp_path / "multi.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT and payload["assets"] == NAMES
    loaded = load_multi(path)
    assert isinstance(loaded, MultiPredictor) and loaded.assets == NAMES
    assert as_multi_predictor(str(path)).assets == NAMES  # the strategy's model= path
    a, b = result.predictor.predict(short), loaded.predict(short)
    for name in NAMES:
        pd.testing.assert_frame_equal(a[name], b[name], rtol=0, atol=1e-12)
    assert a[SOL].loc[:"2021-10-15"].isna().all().all() and a[SOL]["signal"].notna().any()
    # a file that does not fit is a CheckpointError that says why
    for change, match in [({"format": "s4-trading/1"}, "not a multi-asset"),
                          ({"assets": NAMES[:2]}, "assets"),
                          ({"feature_names": ["x"]}, "features")]:
        bad = tmp_path / "bad.pt"
        torch.save({**payload, **change}, bad)
        with pytest.raises(CheckpointError, match=match):
            load_multi(bad)


def test_stream_equals_batch(trained):
    p = trained[0].predictor
    frames = frames_from(NAMES, "2021-10-01", "2021-10-31")
    batch = p.predict(frames)
    index = batch[NAMES[0]].index
    stream, rows = p.stream(), {n: [] for n in NAMES}
    for t in index:
        bars = {}
        for n, df in frames.items():
            if t in df.index:
                r = df.loc[t]
                bars[n] = (r.open, r.high, r.low, r.close, r.volume, t.hour + t.minute / 60,
                           float(t.day_of_week))
        out = stream.step(bars)
        for n in NAMES:
            rows[n].append(out.get(n))
    for n in NAMES:
        warm = batch[n]["signal"].notna().to_numpy()
        assert [r is not None for r in rows[n]] == warm.tolist()
        got = pd.DataFrame([r for r in rows[n] if r is not None], index=index[warm])
        want = batch[n][warm][got.columns]
        assert np.allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=1e-6)
    assert sum(r is not None for r in rows[SOL]) > 100  # the late starter got warm


class Record(bt.Analyzer):
    def start(self):
        self.rows = []

    def next(self):
        s = self.strategy
        now = max(d.datetime.datetime(0) for d in s.datas if len(d))
        self.rows.append((now, [s.getposition(d).size for d in s.datas]))

    prenext = next

    def get_analysis(self):
        return self.rows


def test_strategy_trades_the_weights_head(trained):
    p = trained[0].predictor
    cerebro = bt.Cerebro(stdstats=False)
    for name in NAMES:
        cerebro.adddata(feeds.EmbeddedData(name=name, fromdate=dt.datetime(2021, 10, 1),
                                           todate=dt.datetime(2021, 11, 20)), name=name)
    cerebro.broker.setcash(100_000)
    cerebro.addstrategy(S4MultiAssetStrategy, model=p, rebalance=12, min_trade=0.0,
                        max_weight=0.6)
    cerebro.addanalyzer(Record, _name="rec")
    strat = cerebro.run()[0]
    assert strat.rebalances > 10
    sol_warm = SOL_START + pd.Timedelta(hours=p.feature_spec.warmup)
    for t, w in strat.weights_history:
        assert all(0.0 <= v <= 0.6 for v in w.values()) and sum(w.values()) <= 1.0 + 1e-9
        assert (SOL in w) == (pd.Timestamp(t, tz="UTC") >= sol_warm)
    rows = strat.analyzers.rec.get_analysis()
    sol = [(pd.Timestamp(t, tz="UTC"), sizes[2]) for t, sizes in rows]
    assert all(size == 0 for t, size in sol if t < sol_warm)
    sizes = np.array([s for _, s in rows])
    assert (sizes >= 0).all() and ((sizes > 0) & (sizes < 1)).any()  # fractional BTC
    assert (sizes[:, 2] > 0).any()
    assert not strat.failed_orders  # sells first, sizes within the cash
