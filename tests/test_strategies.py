import datetime as dt

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
import s4_strategies
from s4_strategies import S4DirectionalStrategy, S4PortfolioStrategy

# whole backtests of the two model strategies
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return s4_strategies.load_model(tiny_checkpoint)


class Positions(bt.Analyzer):
    def start(self):
        self.sizes = []

    def next(self):
        self.sizes.append([self.strategy.getposition(d).size for d in self.strategy.datas])

    def get_analysis(self):
        return self.sizes


def run_directional(model, data=None, **params):
    cerebro = bt.Cerebro(stdstats=False)
    if data is None:
        data = feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2021, 7, 1),
                                  todate=dt.datetime(2021, 9, 30))
    cerebro.adddata(data)
    cerebro.broker.setcash(100_000)
    params.setdefault("rule", "argmax")  # most tests here exercise the argmax sizing hooks
    cls = params.pop("strategy", S4DirectionalStrategy)
    cerebro.addstrategy(cls, model=model, **params)
    cerebro.addanalyzer(Positions, _name="pos")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    strat = cerebro.run()[0]
    return cerebro, strat


class AlwaysLong(S4DirectionalStrategy):
    def signal_to_target(self, signal, confidence, pred_vol):
        return 0.5


class AlwaysShort(S4DirectionalStrategy):
    def signal_to_target(self, signal, confidence, pred_vol):
        return -0.5


class RecordMove(S4DirectionalStrategy):
    def start(self):
        super().start()
        self.moves, self.sides = [], []

    def next(self):
        super().next()
        self.moves.append(self.s4.pred_move[0])
        self.sides.append(self._side)


def test_the_default_rule_is_the_checkpoints_cost_band(model, tiny_result):
    from s4_strategies.rules import BandRule

    band = tiny_result.meta["decision"]
    assert model.meta["decision"] == band  # saved with the checkpoint
    assert band["score"] == "pred_move" and band["horizon"] == 5 and band["fee"] == 0.00055
    assert 0 <= band["enter"] and band["exit"] <= band["enter"]
    _, strat = run_directional(model, rule="auto", strategy=RecordMove)
    assert strat.band == BandRule(band["enter"], band["exit"])
    # a band every forecast crosses: the strategy's side each bar is BandRule.positions'
    _, strat = run_directional(model, rule="band", band=dict(enter=0.0, exit=0.0),
                               strategy=RecordMove, min_change=0.0)
    expected = BandRule(0.0, 0.0).positions(np.array(strat.moves))
    assert np.array_equal(np.array(strat.sides, dtype=float), expected)
    assert len(set(strat.sides)) > 1
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    assert (sizes > 0).any() and (sizes < 0).any()


def test_band_rule_without_a_band_is_refused(model):
    meta = model.meta.pop("decision")
    try:
        with pytest.raises(ValueError, match="band=dict"):
            run_directional(model, rule="band")
        _, strat = run_directional(model, rule="auto")  # falls back to argmax
        assert strat.band is None
    finally:
        model.meta["decision"] = meta


def test_directional_trades_and_pays_fees(model):
    cerebro, strat = run_directional(model, conf_threshold=0.0, min_change=0.0)
    ta = strat.analyzers.trades.get_analysis()
    assert ta.total.total > 0
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    assert (sizes > 0).any() and (sizes < 0).any()
    # Fees were charged: net PnL of closed trades is below gross.
    assert ta.pnl.net.total < ta.pnl.gross.total


def test_long_only_never_shorts(model):
    _, strat = run_directional(model, conf_threshold=0.0, long_only=True)
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    assert (sizes >= 0).all() and (sizes > 0).any()


def test_regime_filter_can_stand_aside(model):
    _, strat = run_directional(model, conf_threshold=0.0, regime_quantile=0.0, regime_window=48)
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    _, base_strat = run_directional(model, conf_threshold=0.0)
    base = np.array(base_strat.analyzers.pos.get_analysis())[:, 0]
    assert (sizes != 0).sum() < (base != 0).sum()


def _synthetic(bars=400, crash_at=300, low_frac=0.9):
    """Flat-ish hourly bars with one bar whose low pierces 10 % below while the close does not."""
    idx = pd.date_range("2021-01-01", periods=bars, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, bars)))
    df = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999,
                       "close": close, "volume": 1000.0}, index=idx)
    df.iloc[crash_at, df.columns.get_loc("low")] = df["close"].iloc[crash_at] * low_frac
    return df


def test_stop_loss_triggers_on_the_bar_low_not_the_close(model):
    df = _synthetic()
    assert (df["close"] > df["close"].iloc[0] * 0.96).all()  # no close ever reaches the stop
    cerebro, strat = _run_sub(AlwaysLong, model, df, stop_loss=0.05, cooldown=1000)
    assert strat.stopped_out == 1
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    assert sizes[-1] == 0  # out after the stop; cooldown keeps it out
    ta = strat.analyzers.trades.get_analysis()
    assert ta.total.closed == 1 and ta.pnl.net.total < 0


def test_take_profit_for_shorts_on_the_bar_low(model):
    df = _synthetic()
    _, strat = _run_sub(AlwaysShort, model, df, take_profit=0.05, cooldown=1000)
    assert strat.stopped_out == 1
    ta = strat.analyzers.trades.get_analysis()
    assert ta.total.closed == 1 and ta.pnl.gross.total > 0


def _run_sub(cls, model, df, **params):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.ArrayData(dataname=df))
    cerebro.broker.setcash(100_000)
    params.setdefault("rule", "argmax")
    cerebro.addstrategy(cls, model=model, indicator={"strict": False, "warmup": 1}, **params)
    cerebro.addanalyzer(Positions, _name="pos")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    return cerebro, cerebro.run()[0]


def test_portfolio_handles_late_starters_and_constraints(model):
    cerebro = bt.Cerebro(stdstats=False)
    for name in ("bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60"):
        cerebro.adddata(feeds.EmbeddedData(name=name, fromdate=dt.datetime(2021, 9, 1),
                                           todate=dt.datetime(2021, 11, 30)), name=name)
    cerebro.broker.setcash(100_000)
    cerebro.addstrategy(S4PortfolioStrategy, model=model, rebalance=12, max_weight=0.4,
                        conf_threshold=0.0, min_trade=0.0)
    cerebro.addanalyzer(Positions, _name="pos")
    strat = cerebro.run()[0]
    assert strat.rebalances > 10
    sol_start = pd.Timestamp("2021-10-15")
    before = [w for t, w in strat.weights_history if t < sol_start]
    after = [w for t, w in strat.weights_history if t >= sol_start + pd.Timedelta(days=10)]
    assert before and all("bybit:SOLUSDT:60" not in w for w in before)
    assert after and any("bybit:SOLUSDT:60" in w for w in after)
    for _, w in strat.weights_history:
        assert all(0.0 <= v <= 0.4 + 1e-12 for v in w.values())
        assert sum(abs(v) for v in w.values()) <= 1.0 + 1e-9
    sizes = np.array(strat.analyzers.pos.get_analysis())
    assert (sizes >= 0).all() and (sizes > 0).any()


def test_crypto_positions_are_fractional(model):
    """10,000 USDT cannot buy a whole BTC: the position must still be taken, fractionally."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2021, 7, 1),
                                       todate=dt.datetime(2021, 8, 31)))
    cerebro.broker.setcash(10_000)
    cerebro.addstrategy(AlwaysLong, model=model, rule="argmax")
    cerebro.addanalyzer(Positions, _name="pos")
    strat = cerebro.run()[0]
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    held = sizes[sizes != 0]
    assert len(held) and (held < 1).all() and (held > 0.1).all()
    value = cerebro.broker.getvalue()
    assert 0.4 < held[-1] * strat.data.close[0] / value < 0.6


class RecordFills(AlwaysLong):
    def __init__(self):
        super().__init__()
        self.fills = []

    def notify_order(self, order):
        super().notify_order(order)
        if order.status == order.Completed:
            self.fills.append((order.executed.size, order.executed.price, order.executed.comm))


def _run_fills(model, cash=10_000, commission=None, **params):
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(feeds.EmbeddedData(name="bybit:BTCUSDT:60", fromdate=dt.datetime(2021, 7, 1),
                                       todate=dt.datetime(2021, 7, 31)))
    cerebro.broker.setcash(cash)
    if commission is not None:
        cerebro.broker.setcommission(commission=commission)
    params.setdefault("rule", "argmax")
    cerebro.addstrategy(RecordFills, model=model, min_change=0.0, **params)
    cerebro.addanalyzer(Positions, _name="pos")
    return cerebro, cerebro.run()[0]


def _rates(fills):
    return np.array([comm / (abs(size) * price) for size, price, comm in fills])


def test_fees_bybit_keeps_a_commission_the_user_set(model):
    cerebro, strat = _run_fills(model, commission=0.001)  # fees="bybit" is the default
    assert strat.fills
    np.testing.assert_allclose(_rates(strat.fills), 0.001)
    assert cerebro.broker.getcommissioninfo(strat.data).p.commission == 0.001


def test_fees_bybit_charges_the_default_broker_and_says_so(model, caplog):
    from s4_strategies.fees import BYBIT_TAKER

    with caplog.at_level("INFO", logger="s4_strategies.fees"):
        _, strat = _run_fills(model)
    assert strat.fills
    np.testing.assert_allclose(_rates(strat.fills), BYBIT_TAKER)
    assert "Bybit taker fee" in caplog.text


def test_sizing_is_fractional_without_fees(model):
    """fees=None used to leave backtrader's whole-unit sizing: no BTC at all for 10,000."""
    cerebro, strat = _run_fills(model, fees=None)
    sizes = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    held = sizes[sizes != 0]
    assert len(held) and (held < 1).all()
    assert all(comm == 0 for _, _, comm in strat.fills)
    assert 0.4 < held[-1] * strat.data.close[0] / cerebro.broker.getvalue() < 0.6


def test_portfolio_sizing_is_fractional_without_fees(model):
    cerebro = bt.Cerebro(stdstats=False)
    for name in ("bybit:BTCUSDT:60", "bybit:ETHUSDT:60"):
        cerebro.adddata(feeds.EmbeddedData(name=name, fromdate=dt.datetime(2021, 7, 1),
                                           todate=dt.datetime(2021, 8, 15)), name=name)
    cerebro.broker.setcash(10_000)
    cerebro.addstrategy(S4PortfolioStrategy, model=model, rebalance=12, conf_threshold=0.0,
                        min_trade=0.0, fees=None)
    cerebro.addanalyzer(Positions, _name="pos")
    strat = cerebro.run()[0]
    btc = np.array(strat.analyzers.pos.get_analysis())[:, 0]
    assert ((btc > 0) & (btc < 1)).any()


def test_an_unknown_fee_choice_is_refused(model):
    with pytest.raises(ValueError, match="fees="):
        _run_fills(model, fees="binance")
