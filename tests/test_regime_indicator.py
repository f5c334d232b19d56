"""RegimeIndicator in backtrader (next == once == the batch filter, restarts, a strategy that
stands aside), and the regime metrics, picture and tear-sheet block of analyzers.regimes."""

import datetime as dt
import json
import math
import pickle

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import analyzers
import feeds
from analyzers.regimes import regime_metrics
from s4_strategies.indicators import RegimeIndicator
from s4_strategies.training.regimes import fit_regimes

FROM, TO = dt.datetime(2021, 7, 1), dt.datetime(2021, 7, 31, 23)
LINES = ("regime", "regime_prob", "p0", "p1", "p2", "signal")


@pytest.fixture(scope="module")
def predictor(tiny_result):
    return tiny_result.predictor


@pytest.fixture(scope="module")
def regimes(predictor):
    bars = feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-06-30 23:00")
    return fit_regimes(predictor, bars, n_regimes=3, kind="hmm")


class Record(bt.Strategy):
    params = dict(model=None, regimes=None, ind=None)

    def __init__(self):
        self.reg = RegimeIndicator(self.data, model=self.p.model, regimes=self.p.regimes,
                                   **(self.p.ind or {}))
        self.rows = []

    def prenext(self):
        self.next()

    def next(self):
        self.rows.append([getattr(self.reg, k)[0] for k in LINES])


def run(predictor, regimes, runonce, data=None, ind=None):
    cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
    if data is None:
        data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    cerebro.adddata(data)
    cerebro.addstrategy(Record, model=predictor, regimes=regimes, ind=ind)
    return cerebro.run()[0]


def test_next_once_and_the_batch_filter_agree(predictor, regimes):
    nxt = np.array(run(predictor, regimes, runonce=False).rows)
    once = np.array(run(predictor, regimes, runonce=True).rows)
    np.testing.assert_array_equal(np.isnan(nxt), np.isnan(once))
    np.testing.assert_allclose(nxt, once, atol=1e-7, equal_nan=True)
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    warm = predictor.feature_spec.warmup
    probs = regimes.filter(predictor.states(df).to_numpy()[warm - 1:])  # from the warm-up on
    assert np.isnan(nxt[: warm - 1, 0]).all()
    np.testing.assert_allclose(nxt[warm - 1:, 2:5], probs, atol=1e-7)
    np.testing.assert_array_equal(nxt[warm - 1:, 0], probs.argmax(1))
    assert len(np.unique(nxt[warm - 1:, 0])) >= 2  # the month is not one regime throughout


def test_restart_from_a_saved_state_continues_the_same_lines(predictor, regimes):
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    full = np.array(run(predictor, regimes, False, data=feeds.ArrayData(dataname=df)).rows)
    first = run(predictor, regimes, False, data=feeds.ArrayData(dataname=df.iloc[:400]))
    state = first.reg.get_state()
    assert "regime" in state and state["regime"]["log_p"] is not None
    second = run(predictor, regimes, False, data=feeds.ArrayData(dataname=df.iloc[400:]),
                 ind=dict(state=pickle.loads(pickle.dumps(state))))
    np.testing.assert_allclose(np.array(second.rows)[:, :5], full[400:, :5], atol=1e-9)


class StandAside(bt.Strategy):
    """Long on a positive predicted return, flat in regime ``avoid``."""

    params = dict(model=None, regimes=None, avoid=2)

    def __init__(self):
        self.reg = RegimeIndicator(self.data, model=self.p.model, regimes=self.p.regimes)
        self.seen = []

    def next(self):
        regime = self.reg.regime[0]
        self.seen.append((regime, self.position.size))
        if regime == self.p.avoid or self.reg.pred_return[0] <= 0:
            self.order_target_percent(target=0.0)
        else:
            self.order_target_percent(target=0.5)


def test_a_strategy_stands_aside_in_a_regime_and_the_report_splits_by_regime(
        predictor, regimes, tmp_path):
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate=FROM, todate=TO)
    labels = regimes.labels(predictor.states(df).to_numpy()[predictor.feature_spec.warmup:])
    avoid = int(np.bincount(labels).argmax())  # the month's most common regime
    strat = _stand_aside(predictor, regimes, avoid)
    seen = strat.seen
    # the order placed at bar t fills at t+1's open: at t+1 the position reflects t's regime
    held_after_avoid = [pos for (reg, _), (_, pos) in zip(seen[:-1], seen[1:]) if reg == avoid]
    assert held_after_avoid and all(p == 0 for p in held_after_avoid)
    assert any(pos != 0 for _, pos in seen)
    report = analyzers.write_report(strat, tmp_path)
    assert (tmp_path / "regimes.png").stat().st_size > 10_000
    assert 'class="s4-regimes"' in (tmp_path / "tearsheet.html").read_text()
    metrics = json.loads((tmp_path / "metrics.json").read_text())["regimes"]
    a = strat.analyzers.regimes.get_analysis()
    assert set(metrics) == {str(k) for k in a["table"].index}
    # the strategy earns nothing in the regime it stands aside in (returns counted by the
    # label of the bar before them, i.e. the regime the position was decided in)
    assert a["table"].loc[avoid, "total_return"] == pytest.approx(0.0, abs=1e-12)
    assert report["files"]["regimes"].name == "regimes.png"


def _stand_aside(predictor, regimes, avoid):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=FROM, todate=TO))
    cerebro.addstrategy(StandAside, model=predictor, regimes=regimes, avoid=avoid)
    cerebro.broker.setcommission(0.0)
    cerebro.broker.setcash(10_000_000.0)  # whole units of BTC at 50 %
    analyzers.add_all(cerebro)
    cerebro.addanalyzer(analyzers.RegimeAnalyzer, _name="regimes")
    return cerebro.run()[0]


def test_a_regime_model_of_another_model_is_refused(predictor, regimes):
    other = type(regimes).from_dict({**regimes.to_dict(), "mean": [0.0] * 5,
                                     "scale": [1.0] * 5,
                                     "components": np.eye(regimes.means.shape[1], 5).tolist()})
    with pytest.raises(ValueError, match="another model"):
        run(predictor, other, True)
    with pytest.raises(ValueError, match="regimes="):
        run(predictor, None, True)


def test_regime_metrics_by_hand():
    idx = pd.date_range("2024-01-01", periods=7, freq="1D")
    r = pd.Series([0.0, 0.01, -0.02, 0.03, 0.0, 0.01, -0.01], index=idx)
    lab = pd.Series([0, 0, 1, 1, np.nan, 0, 1], index=idx)
    t = regime_metrics(r, lab, periods_per_year=365)
    # returns at bars 1..6 take the label of bars 0..5: 0, 0, 1, 1, (none), 0
    x0 = np.array([0.01, -0.02, -0.01])  # regime 1 has 0.03 and 0.0
    assert list(t.index) == [0, 1] and t.loc[0, "bars"] == 3 and t.loc[1, "bars"] == 2
    assert t.loc[0, "share"] == pytest.approx(0.6)
    assert t.loc[0, "total_return"] == pytest.approx(np.prod(1 + x0) - 1)
    assert t.loc[0, "ann_return"] == pytest.approx(x0.mean() * 365)
    assert t.loc[0, "ann_vol"] == pytest.approx(x0.std(ddof=1) * math.sqrt(365))
    assert t.loc[0, "sharpe"] == pytest.approx(x0.mean() / x0.std(ddof=1) * math.sqrt(365))
    assert t.loc[0, "hit_rate"] == pytest.approx(1 / 3)
    assert t.loc[1, "hit_rate"] == 1.0  # the zero return is not a miss
