"""AvellanedaStoikovStrategy end to end: both data sources, both fill models, the analyzer."""

import functools
import json
import math
from pathlib import Path

import backtrader as bt
import pytest

import feeds
from analyzers.market_making import MarketMakingAnalyzer, format_table
from feeds import ArrayData
from feeds.ticks import TickData, load_ticks
from s4_strategies.apps.market_making import run_market_making
from s4_strategies.fees import MakerTakerCommInfo
from s4_strategies.market_making.broker import MarketMakingBroker
from s4_strategies.market_making.instrument import InstrumentParams
from s4_strategies.strategies.market_maker import AvellanedaStoikovStrategy

TICKS = dict(max_events=4000)
MONTH = dict(fromdate="2024-03-01", todate="2024-03-31")


def check_reconciles(metrics):
    tot = metrics["total"]
    assert tot["reconciles"]
    assert tot["total_pnl"] == pytest.approx(tot["broker_pnl"], abs=1e-6)
    for name, s in metrics.items():
        if name == "total":
            continue
        assert s["spread_pnl"] + s["inventory_pnl"] - s["fees"] == pytest.approx(s["total_pnl"],
                                                                                abs=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("source,fill_model", [
    ("ticks", "trade_through"), ("ticks", "intensity"),
    ("bars", "trade_through"), ("bars", "intensity"),
])
def test_runs_on_both_sources_under_both_fill_models(source, fill_model):
    kw = TICKS if source == "ticks" else MONTH
    res = run_market_making(source, fill_model, **kw)
    m = res["metrics"]
    check_reconciles(m)
    s = m["BTCUSDT"]
    assert s["quotes_bid"] > 0 and s["quotes_ask"] > 0
    assert s["fills_bid"] + s["fills_ask"] > 0
    assert 0 < s["fill_ratio"] <= 1
    assert s["fees"] > 0  # maker 0.02 % on every passive fill
    assert s["max_abs_inventory"] <= 5 * 0.01 + 1e-12
    assert s["quoted_spread"] > 0
    cal = res["calibration"]
    assert cal["sigma"] > 0 and cal["kappa"] > 0 and cal["A"] > 0
    assert "total PnL" in res["table"]
    assert res["total_pnl"] == m["total"]["total_pnl"] and res["fill_model"] == fill_model


@pytest.mark.slow
def test_glft_model_runs_and_reconciles():
    res = run_market_making("ticks", "auto", model="glft", **TICKS)
    assert res["fill_model"] == "trade_through"
    check_reconciles(res["metrics"])
    assert res["metrics"]["BTCUSDT"]["quotes_bid"] > 0


@pytest.mark.slow
def test_intensity_fills_are_reproducible_with_a_seed():
    a = run_market_making("bars", "intensity", seed=7, **MONTH)["metrics"]
    b = run_market_making("bars", "intensity", seed=7, **MONTH)["metrics"]
    c = run_market_making("bars", "intensity", seed=8, **MONTH)["metrics"]
    assert a == b
    assert a["BTCUSDT"]["total_pnl"] != c["BTCUSDT"]["total_pnl"]


@pytest.mark.slow
def test_hard_inventory_limit_binds_and_is_never_exceeded():
    # almost no inventory skew and no size decay: inventory random-walks into the limit
    res = run_market_making("bars", "trade_through", gamma=1e-9, eta=0.0, trend=None,
                            max_inventory=2.0, **MONTH)
    s = res["metrics"]["BTCUSDT"]
    assert s["max_abs_inventory"] == pytest.approx(0.02)
    assert s["max_abs_inventory"] <= 0.02 + 1e-12


@pytest.mark.slow
def test_session_close_flattens_inventory():
    res = run_market_making("ticks", "trade_through", fromdate="2024-08-08 23:59:00",
                            todate="2024-08-09 00:00:30", sigma_window=40.0, min_trades=20,
                            gamma=3e-2)
    s = res["metrics"]["BTCUSDT"]
    assert s["close_inventory"] == [["2024-08-09T00:00:00+00:00", 0.0]]
    check_reconciles(res["metrics"])


@pytest.mark.slow
def test_maker_rebate_makes_fees_negative():
    res = run_market_making("bars", "trade_through", maker=-0.0001, **MONTH)
    s = res["metrics"]["BTCUSDT"]
    assert s["fees"] < 0 and s["fills_taker"] == 0
    check_reconciles(res["metrics"])


@pytest.mark.slow
def test_per_contract_futures_fees_reconcile():
    res = run_market_making("bars", "trade_through", per_contract=7.0, mult=0.1, margin=1000.0,
                            lot=1.0, size_step=1.0, gamma=5e-5, **MONTH)
    s = res["metrics"]["BTCUSDT"]
    volume = s["volume_bid"] + s["volume_ask"] + s["volume_taker"]
    assert volume > 0
    assert s["fees"] == pytest.approx(7.0 * volume)  # 14 per contract round turn
    check_reconciles(res["metrics"])


@pytest.mark.slow
def test_writes_the_report_of_the_other_strategies_with_its_cash(tmp_path):
    """tearsheet.html, equity_drawdown.png and metrics.json as analyzers.write_report writes
    them for every strategy; returns measured against ``cash``."""
    res = run_market_making("bars", "trade_through", out=tmp_path, cash=50_000.0, **MONTH)
    names = {"tearsheet.html", "metrics.json", "equity_drawdown.png", "mm_metrics.json",
             "mm_inventory.png", "mm_report.html"}
    assert {p.name for p in tmp_path.iterdir()} == names
    assert {Path(p).name for p in res["files"]} == names
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert {"title", "strategy", "benchmark", "start", "end", "periods_per_year", "calendar",
            "rf", "notes", "metrics", "tearsheet", "trades"} <= set(data)
    assert data["periods_per_year"] == 8760 and data["tearsheet"]["periods_per_year"] == 365
    assert data["benchmark"] == "BTCUSDT buy & hold"
    assert data["cash"] == 50_000.0 == res["cash"]
    assert data["final_value"] == pytest.approx(50_000.0 + res["broker_pnl"], abs=1e-6)
    m = data["metrics"]
    assert m["total_return"] == pytest.approx(res["broker_pnl"] / 50_000.0, rel=1e-9)
    assert m["total_return"] == pytest.approx(res["report"]["metrics"]["total_return"])
    assert data["market_making"]["metrics"]["total"]["reconciles"] is True
    html = (tmp_path / "tearsheet.html").read_text(encoding="utf-8")
    assert "Periods/Year: 365" in html and "Market making on bybit:BTCUSDT:60" in html
    assert (tmp_path / "equity_drawdown.png").stat().st_size > 10_000


def test_cash_is_the_starting_value_of_the_returns():
    res = run_market_making("ticks", "trade_through", max_events=400, cash=20_000.0)
    assert res["cash"] == 20_000.0
    assert res["final_value"] == pytest.approx(20_000.0 + res["broker_pnl"], abs=1e-6)
    m = res["report"]["metrics"]
    assert m["total_return"] == pytest.approx(res["broker_pnl"] / 20_000.0, rel=1e-9)
    assert m["periods_per_year"] == 365 * 86_400  # ticks measured once a second


def test_rejects_unknown_parameters():
    with pytest.raises(TypeError):
        run_market_making("ticks", gamme=1.0)
    with pytest.raises(ValueError):
        run_market_making("minutes")


# ----------------------------------------------------------------- trend lean
class StandInS4(bt.Indicator):
    """Stands in for S4Indicator: a constant predicted next-bar return."""

    lines = ("signal", "confidence", "pred_return", "pred_vol")
    params = dict(value=0.0)

    def next(self):
        self.lines.pred_return[0] = self.p.value
        self.lines.signal[0] = math.copysign(1.0, self.p.value)


class PredData(ArrayData):
    lines = ("pred_return",)


FIXED = dict(sigma=5.0, A=5e-4, kappa=0.005, gamma=1e-4, horizon=4 * 3600.0, tick=0.1,
             trend_cap=1e9)


def last_quote(trend, data_cls=ArrayData, extra=None, **params):
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2024-03-01", todate="2024-03-03")
    if extra is not None:
        df = df.assign(pred_return=extra)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(fill_model="intensity", intensity=(1e-12, 1.0))
    cerebro.broker.setcash(1e6)
    cerebro.adddata(data_cls(dataname=df), name="BTCUSDT")
    cerebro.addstrategy(AvellanedaStoikovStrategy, trend=trend, **{**FIXED, **params})
    strat = cerebro.run()[0]
    return strat.quotes()


def test_trend_from_a_model_indicator_leans_the_quotes():
    flat = last_quote(None)
    # a lean small enough to keep post-only quotes off the close (bars), which would clamp it
    up = last_quote(functools.partial(StandInS4, value=0.0001))
    down = last_quote(functools.partial(StandInS4, value=-0.0001))
    assert flat["q"] == up["q"] == down["q"] == 0.0  # no fills: only the lean differs
    centre = {k: (v["bid"] + v["ask"]) / 2 for k, v in dict(flat=flat, up=up, down=down).items()}
    assert centre["down"] < centre["flat"] < centre["up"]
    # GLFT drift term: mu = r·mid/bar, lean = mu/(gamma·sigma²) lots; AS shift = mu·tau
    mu = math.expm1(0.0001) * up["mid"] / 3600.0
    assert up["lean"] == pytest.approx(mu / (1e-4 * 25.0))
    assert centre["up"] - centre["flat"] == pytest.approx(mu * 4 * 3600.0, abs=0.11)


class FourBarS4(StandInS4):
    pred_horizon = 4  # the prediction covers four bars


def test_trend_horizon_follows_the_indicator():
    one = last_quote(functools.partial(StandInS4, value=0.001))
    four = last_quote(functools.partial(FourBarS4, value=0.001))
    assert four["lean"] == pytest.approx(one["lean"] / 4)


def test_trend_from_a_line_on_the_feed_and_the_ema_default():
    up = last_quote("pred_return", PredData, extra=0.001)
    flat = last_quote(None)
    assert (up["bid"] + up["ask"]) / 2 > (flat["bid"] + flat["ask"]) / 2
    ema = last_quote("ema", trend_fast=6 * 3600.0, trend_slow=24 * 3600.0)
    assert ema["lean"] != 0.0
    assert last_quote("ema")["lean"] == 0.0  # tick-scale EMAs on hourly bars: no slope
    with pytest.raises(ValueError):
        last_quote("no_such_line")


def test_inventory_nudge_and_size_decay_lean_against_inventory():
    res_q = {}
    for nudge in (0.0, 1.0):
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.broker = MarketMakingBroker(fill_model="trade_through")
        cerebro.broker.setcash(1e6)
        cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
        cerebro.adddata(TickData(dataname=load_ticks("binance:BTCUSDT", max_events=3000)),
                        name="BTCUSDT")
        cerebro.addstrategy(AvellanedaStoikovStrategy, inventory_nudge=nudge, trend=None)
        strat = cerebro.run()[0]
        res_q[nudge] = strat.quotes()
    q = res_q[1.0]["q"]
    if q > 0:  # long: the bid shrinks
        assert res_q[1.0]["bid_size"] < res_q[1.0]["ask_size"]
    elif q < 0:
        assert res_q[1.0]["ask_size"] < res_q[1.0]["bid_size"]


def test_several_instruments_with_their_own_parameters():
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = MarketMakingBroker(fill_model="trade_through")
    cerebro.broker.setcash(1e6)
    cerebro.broker.addcommissioninfo(MakerTakerCommInfo())
    window = dict(fromdate="2024-08-08 23:55", todate="2024-08-08 23:55:40")
    cerebro.adddata(TickData(dataname=load_ticks("binance:BTCUSDT", **window)), name="SPOT")
    cerebro.adddata(TickData(dataname=load_ticks("binance-usdm:BTCUSDT", **window)), name="PERP")
    cerebro.addstrategy(AvellanedaStoikovStrategy, gamma=3e-3, sigma_window=40.0, min_trades=20,
                        instruments=dict(PERP=dict(tick=0.1, gamma=1e-3, size_step=0.001)))
    cerebro.addanalyzer(MarketMakingAnalyzer, _name="mm")
    strat = cerebro.run()[0]
    m = strat.analyzers.mm.get_analysis()
    assert {"SPOT", "PERP", "total"} <= set(m)
    assert m["total"]["reconciles"]
    perp = strat.quotes(strat.datas[1])
    assert perp is not None and round(perp["bid"] * 10) == pytest.approx(perp["bid"] * 10)
    assert m["SPOT"]["quotes_bid"] > 0 and m["PERP"]["quotes_bid"] > 0
    assert "PERP" in format_table(m, "PERP")
    with pytest.raises(ValueError):
        c2 = bt.Cerebro()
        c2.adddata(TickData(dataname=load_ticks("binance:BTCUSDT", max_events=10)), name="A")
        c2.addstrategy(AvellanedaStoikovStrategy, instruments=dict(A=dict(gama=1)))
        c2.run()


def test_sigma_from_trade_prices():
    res = run_market_making("ticks", "trade_through", sigma_source="trade", **TICKS)
    assert res["calibration"]["sigma"] > 0
    check_reconciles(res["metrics"])
    with pytest.raises(ValueError):
        run_market_making("ticks", sigma_source="vwap", max_events=50)


def test_reads_self_p_unless_the_instrument_overrides_it():
    def run(**params):
        cerebro = bt.Cerebro(stdstats=False)
        for name in ("SPOT", "PERP"):
            cerebro.adddata(TickData(dataname=load_ticks("binance:BTCUSDT", max_events=20)),
                            name=name)
        cerebro.addstrategy(AvellanedaStoikovStrategy, **params)
        return cerebro.run()[0]

    strat = run(instruments=dict(PERP=dict(tick=0.1, model="glft")))
    spot, perp = (strat._books[d].p for d in strat.datas)
    assert spot is strat.p
    assert isinstance(perp, InstrumentParams)
    assert (perp.tick, perp.model, perp.gamma) == (0.1, "glft", strat.p.gamma)
    with pytest.raises(ValueError, match="kappa for PERP must be"):
        run(instruments=dict(PERP=dict(kappa=-1.0)))
    with pytest.raises(ValueError, match="gamma for SPOT must be"):
        run(gamma=0.0)
    with pytest.raises(ValueError, match="unknown feeds"):
        run(instruments=dict(FUT=dict(tick=1.0)))
