"""Per-instrument presets (real tick and lot step), several instruments in one market-making
run with per-symbol params, and the command line that drives it (``s4trade backtest
--strategy market-making``, ``scripts/run_market_making.py``)."""

import importlib.util
import json
from pathlib import Path

import backtrader as bt
import numpy as np
import pytest

import feeds
from feeds.ticks import load_ticks
from s4_strategies.apps.cli import build_parser, main
from s4_strategies.apps.market_making import build_market_making, run_market_making
from s4_strategies.market_making.presets import (
    INSTRUMENTS,
    feed_names,
    instrument_overrides,
    instrument_preset,
    on_grid,
    tick_from_prices,
)

ROOT = Path(__file__).resolve().parents[1]
SPOT, PERP = "binance:BTCUSDT", "binance-usdm:BTCUSDT"
# calibrate within the first seconds, so that 3000 events (14 s of the USD-M sample) quote
FAST = dict(sigma_window=10.0, calib_window=20.0, recalibrate=5.0, min_trades=20)
KEYS = {"gamma", "tick", "lot", "size_step", "eta", "instruments"}


# ----------------------------------------------------------------- presets
def test_presets_carry_the_real_tick_and_lot_step():
    assert instrument_preset(PERP) == dict(tick=0.1, size_step=0.001, lot=0.01)
    assert instrument_preset(f"{PERP}:trades") == instrument_preset(PERP)
    assert instrument_preset(SPOT) == dict(tick=0.01, size_step=0.00001, lot=0.01)
    assert instrument_preset("bybit:BTCUSDT:60")["tick"] == 0.1
    assert instrument_preset("bybit:ETHUSDT:60")["size_step"] == 0.01
    assert instrument_preset("bybit:SOLUSDT:60")["size_step"] == 0.1
    for name, preset in INSTRUMENTS.items():  # the quote size is a whole number of steps
        assert on_grid(preset["lot"], preset["size_step"]) and preset["lot"] > 0, name
    preset = instrument_preset(PERP)
    preset["tick"] = 1.0  # a copy: the table is not changed
    assert INSTRUMENTS[PERP]["tick"] == 0.1


def test_unknown_dataset_lists_the_known_ones_or_reads_its_tick_from_its_prices():
    with pytest.raises(ValueError, match="binance-usdm:BTCUSDT"):
        instrument_preset("kraken:XBTUSD")
    assert instrument_preset("kraken:XBTUSD", [60000.5, 60001.0, 60003.5]) == {"tick": 0.5}
    with pytest.raises(ValueError, match="kraken:XBTUSD"):
        instrument_preset("kraken:XBTUSD", np.pi * np.arange(1, 50))


@pytest.mark.parametrize("name", [SPOT, PERP])
def test_tick_presets_match_the_tick_data(name):
    """Every bid, ask and trade price of the sample is on the preset's tick, and the tick is
    the finest grid the data shows (not a multiple of the real one); sizes on the lot step."""
    ev = load_ticks(name)
    preset = instrument_preset(name)
    prices = ev[["bid", "ask", "trade_price"]].to_numpy().ravel()
    prices = prices[np.isfinite(prices)]
    assert on_grid(prices, preset["tick"]).all()
    assert tick_from_prices(prices) == preset["tick"]
    sizes = ev[["bid_size", "ask_size", "trade_size"]].to_numpy().ravel()
    assert tick_from_prices(sizes[sizes > 0]) == preset["size_step"]


@pytest.mark.parametrize("name", ["bybit:BTCUSDT:60", "bybit:ETHUSDT:60", "bybit:SOLUSDT:60"])
def test_bar_presets_match_the_2023_2024_bars(name):
    df = feeds.load_embedded(name, fromdate="2023-01-01")
    preset = instrument_preset(name)
    assert tick_from_prices(df[["open", "high", "low", "close"]].to_numpy()) == preset["tick"]
    assert tick_from_prices(df["volume"].to_numpy()) == preset["size_step"]


# ----------------------------------------------------------------- price grid
def test_tick_from_prices_on_closed_forms():
    k = np.arange(200)
    assert tick_from_prices(61800.0 + 0.1 * k) == 0.1
    assert tick_from_prices(150.0 + 0.005 * k) == 0.005
    assert tick_from_prices(60000.0 + 0.5 * k) == 0.5
    assert tick_from_prices(25.0 * (k + 1)) == 25.0
    assert tick_from_prices(1.0 + 1e-5 * k) == 1e-5
    # only the multiples the sample uses: every other 0.1 step is a 0.2 grid
    assert tick_from_prices(100.0 + 0.2 * k) == pytest.approx(0.2)
    # float32 storage (38.7225 is not exact in float32); NaN is ignored
    assert tick_from_prices(np.float32([38.7225, 150.13, 35.995, np.nan])) == 0.0025
    for bad in ([], [np.nan], [1.0, -1.0], np.pi * (k + 1)):
        with pytest.raises(ValueError):
            tick_from_prices(bad)


def test_on_grid():
    assert on_grid(61800.3, 0.1) and not on_grid(61800.35, 0.1)
    assert on_grid(0.1 + 0.2, 0.1)  # float error is not off the grid
    assert on_grid(np.array([1.0, 1.01, 1.015]), 0.01).tolist() == [True, True, False]


# ----------------------------------------------------------------- per-symbol params
def test_feed_names_are_symbols_unless_two_share_one():
    assert feed_names(["bybit:ETHUSDT:60", "bybit:SOLUSDT:60"]) == {
        "ETHUSDT": "bybit:ETHUSDT:60", "SOLUSDT": "bybit:SOLUSDT:60"}
    assert feed_names([f"{SPOT}:trades", PERP]) == {SPOT: SPOT, PERP: PERP}
    with pytest.raises(ValueError, match="twice"):
        feed_names([f"{SPOT}:trades", f"{SPOT}:bbo"])


def test_per_symbol_params_merge_over_the_presets():
    feeds_ = feed_names([SPOT, PERP, "bybit:ETHUSDT:60"])
    presets = {n: instrument_preset(d) for n, d in feeds_.items()}
    common, inst = instrument_overrides(
        feeds_, {"eta": 0.1, "*": {"lot": 0.02}, "BTCUSDT": {"gamma": 1e-3},
                 PERP: {"gamma": 2e-3, "tick": 0.5}, "instruments": {"ETHUSDT": {"eta": 0}}},
        KEYS, presets)
    assert common == {"eta": 0.1, "lot": 0.02}  # for every feed, over the presets' lot
    assert inst[SPOT] == {"tick": 0.01, "size_step": 0.00001, "gamma": 1e-3}  # symbol
    assert inst[PERP] == {"tick": 0.5, "size_step": 0.001, "gamma": 2e-3}  # dataset wins
    assert inst["ETHUSDT"] == {"tick": 0.01, "size_step": 0.01, "eta": 0}
    # a flat dict: for every feed; no presets, no overrides
    assert instrument_overrides(feeds_, {"gamma": 1e-3}, KEYS) == ({"gamma": 1e-3}, {})


@pytest.mark.parametrize("params,match", [
    ({"XRPUSDT": {"gamma": 1.0}}, "XRPUSDT"),     # no such feed
    ({"gamme": 1.0}, "gamme"),                     # no such parameter
    ({"BTCUSDT": {"gamme": 1.0}}, "gamme"),
    ({"*": {"gamme": 1.0}}, "gamme"),
    ({"BTCUSDT": 1e-3}, "BTCUSDT"),                # not a mapping
])
def test_bad_per_symbol_params_are_named(params, match):
    with pytest.raises(ValueError, match=match):
        instrument_overrides(feed_names([SPOT]), params, KEYS)


# ----------------------------------------------------------------- runs
class OrderPrices(bt.Analyzer):
    """The limit price of every order the strategy places, per feed."""

    def start(self):
        self.prices = {d._name: [] for d in self.strategy.datas}

    def notify_order(self, order):
        if order.status == order.Submitted and order.exectype == bt.Order.Limit:
            self.prices[order.data._name].append(order.created.price)

    def get_analysis(self):
        return {k: np.array(v) for k, v in self.prices.items()}


def _order_prices(**kw):
    setup = build_market_making("ticks", **kw)
    setup.cerebro.addanalyzer(OrderPrices, _name="px")
    return setup.cerebro.run()[0].analyzers.px.get_analysis()


def test_no_order_is_off_the_usdm_grid_with_the_preset():
    """With the preset tick 0.1 every USD-M quote is on the exchange's grid; the old flat
    tick=0.01 put most of them between its ticks."""
    fixed = _order_prices(dataset=PERP, max_events=3000, **FAST)["BTCUSDT"]
    assert len(fixed) > 20 and on_grid(fixed, 0.1).all()
    old = _order_prices(dataset=PERP, max_events=3000, tick=0.01, **FAST)["BTCUSDT"]
    assert len(old) > 20 and (~on_grid(old, 0.1)).mean() > 0.5


@pytest.mark.slow
def test_no_order_is_off_the_usdm_grid_on_the_whole_sample():
    prices = _order_prices(dataset=PERP)["BTCUSDT"]
    assert len(prices) > 500 and (~on_grid(prices, 0.1)).mean() == 0.0


def test_two_instruments_run_together_with_their_own_params():
    res = run_market_making("ticks", dataset=[SPOT, PERP], max_events=3000, latency="none",
                            queue="risk_averse", params={"*": FAST, PERP: {"gamma": 1e-3}})
    m = res["metrics"]
    assert set(m) == {SPOT, PERP, "total"} and res["feeds"] == {SPOT: SPOT, PERP: PERP}
    assert res["dataset"] == [SPOT, PERP]
    for name in (SPOT, PERP):
        assert m[name]["quotes_bid"] > 0 and m[name]["quotes_ask"] > 0
        assert res["calibration"][name]["kappa"] > 0
    tot = m["total"]
    assert tot["reconciles"] and res["total_pnl"] == tot["total_pnl"]
    assert tot["total_pnl"] == pytest.approx(m[SPOT]["total_pnl"] + m[PERP]["total_pnl"])
    assert res["fills_bid"] == m[SPOT]["fills_bid"] + m[PERP]["fills_bid"]
    inst = res["params"]["instruments"]
    assert inst[PERP] == {"tick": 0.1, "size_step": 0.001, "lot": 0.01, "gamma": 1e-3}
    assert inst[SPOT]["tick"] == 0.01 and res["params"]["min_trades"] == 20
    assert res["broker"] == {"queue": "risk_averse", "queue_power": 3.0,
                             "latency": "feed 0 ms, entry 0 ms, response 0 ms, cancel 0 ms"}
    assert f"{'metric':<28}{'total':>22}" in res["table"]


def test_bar_instruments_quote_on_their_own_grids():
    setup = build_market_making("bars", dataset=["bybit:ETHUSDT:60", "bybit:SOLUSDT:60"],
                                fromdate="2024-03-01", todate="2024-03-08", min_bars=24)
    setup.cerebro.addanalyzer(OrderPrices, _name="px")
    prices = setup.cerebro.run()[0].analyzers.px.get_analysis()
    assert len(prices["ETHUSDT"]) > 10 and on_grid(prices["ETHUSDT"], 0.01).all()
    assert len(prices["SOLUSDT"]) > 10 and on_grid(prices["SOLUSDT"], 0.001).all()
    assert not on_grid(prices["SOLUSDT"], 0.01).all()  # its tick is finer than ETH's


def test_ticks_and_bars_do_not_mix():
    with pytest.raises(ValueError, match="all ticks or all bars"):
        run_market_making("ticks", dataset=[SPOT, "bybit:BTCUSDT:60"])


# ----------------------------------------------------------------- command line
def test_backtest_parses_repeated_data_latency_and_queue_model():
    args = build_parser().parse_args([
        "backtest", "--strategy", "market-making", "--data", f"{SPOT}:trades",
        "--data", f"{PERP}:trades,bybit:X", "--latency-ms", "5,10,20", "--queue-model",
        "risk_averse", "--queue-power", "2", "--params", '{"BTCUSDT": {"gamma": 0.001}}'])
    assert args.data == [f"{SPOT}:trades", f"{PERP}:trades,bybit:X"]
    assert (args.latency_ms, args.queue_model, args.queue_power) == ("5,10,20", "risk_averse",
                                                                     2.0)
    assert args.params == {"BTCUSDT": {"gamma": 0.001}}
    args = build_parser().parse_args(["backtest", "--strategy", "market-making",
                                      "--latency-ms", "colocated"])
    assert args.data is None and args.latency_ms == "colocated" and args.queue_model is None


@pytest.mark.parametrize("flags", [["--latency-ms", "fast"], ["--latency-ms", "-1"],
                                   ["--queue-model", "fifo"], ["--queue-power", "0"]])
def test_backtest_rejects_bad_market_making_flags(flags, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["backtest", "--strategy", "market-making", *flags])
    assert exc.value.code == 2
    assert flags[0] in capsys.readouterr().err


@pytest.mark.parametrize("argv,match", [
    (["--strategy", "directional", "--data", "bybit:BTCUSDT:60", "--data", "bybit:ETHUSDT:60"],
     "--data is given once"),
    (["--strategy", "portfolio", "--queue-model", "prob"], "are for --strategy market-making"),
    (["--strategy", "market-making", "--data", f"{SPOT}:trades", "--data", "bybit:BTCUSDT:60"],
     "all ticks or all bars"),
    (["--strategy", "market-making", "--data", "nasdaq:AAPL:trades"], "embedded data"),
    (["--strategy", "market-making", "--data", f"{SPOT}:trades", "--params",
      '{"ETHUSDT": {"gamma": 1}}'], "ETHUSDT"),
])
def test_backtest_errors_are_one_line(argv, match, tmp_path, capsys):
    assert main(["backtest", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:no tear sheet:RuntimeWarning")  # 14 s: inside one day
def test_backtest_runs_two_instruments_together(tmp_path, capsys):
    out = tmp_path / "mm"
    params = {"max_events": 3000, "*": FAST, "binance-usdm:BTCUSDT": {"gamma": 1e-3}}
    rc = main(["backtest", "--strategy", "market-making", "--data", f"{SPOT}:trades",
               "--data", f"{PERP}:trades", "--params", json.dumps(params),
               "--latency-ms", "0.5,1,2", "--queue-model", "risk_averse", "--out", str(out)])
    assert rc == 0
    assert "spread capture" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    mm = m["market_making"]
    assert m["data"] == [f"{SPOT}:trades", f"{PERP}:trades"] and mm["reconciles"] is True
    assert set(mm["metrics"]) == {SPOT, PERP, "total"}
    assert mm["params"]["instruments"][PERP]["gamma"] == 1e-3
    assert mm["broker"]["latency"] == "feed 0.5 ms, entry 1 ms, response 2 ms, cancel 1 ms"
    assert mm["broker"]["queue"] == "risk_averse"
    assert {f"mm_inventory_{n.replace(':', '_')}.png" for n in (SPOT, PERP)} <= \
        {p.name for p in out.iterdir()}


def _script():
    spec = importlib.util.spec_from_file_location("run_mm", ROOT / "scripts" /
                                                  "run_market_making.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_takes_several_datasets_latency_and_queue_model():
    args = _script().build_parser().parse_args([
        "--dataset", SPOT, "--dataset", f"{PERP},bybit:X", "--latency-ms", "retail",
        "--queue-model", "touch", "--params", '{"*": {"gamma": 0.001}}'])
    assert args.dataset == [SPOT, f"{PERP},bybit:X"]
    assert (args.latency_ms, args.queue, args.params) == ("retail", "touch",
                                                          {"*": {"gamma": 0.001}})
    assert args.source is None and args.queue_power == 3.0


@pytest.mark.slow
def test_script_runs_two_bar_instruments(capsys):
    rc = _script().main(["--dataset", "bybit:ETHUSDT:60,bybit:SOLUSDT:60", "--fromdate",
                         "2024-03-01", "--todate", "2024-03-08", "--set", "min_bars=24",
                         "--params", '{"SOLUSDT": {"gamma": 0.01}}', "--latency-ms", "none"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "['bybit:ETHUSDT:60', 'bybit:SOLUSDT:60'] (bars)" in printed
    assert "ETHUSDT" in printed and "SOLUSDT" in printed and "total" in printed
