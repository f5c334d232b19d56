"""``s4trade live``: shadow mode and testnet mode on recorded candles, restart, kill switch.

The live feed is served by stand-ins (history over the injected REST session, candles pushed
on the injected kline socket); trading goes to the fake Bybit account. Nothing leaves the
process.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

import feeds
from s4_strategies.apps.cli import build_parser
from s4_strategies.apps.live import live_source, run_live
from tests.fake_bybit import FakeBybit
from tests.live_helpers import FrameKlines, FrameKlineSocket

STRAT = dict(rule="argmax", conf_threshold=0.0, min_change=0.05, max_position=0.5)


@pytest.fixture(scope="module")
def frame():
    df = feeds.load_embedded("bybit:BTCUSDT:60", fromdate="2021-07-01", todate="2021-07-31")
    return df[["open", "high", "low", "close", "volume"]].iloc[:240]


def shadow(frame, k, out, lines, **kw):
    return run_live("bybit:BTCUSDT:60", "shadow", model=kw.pop("model"), out=out,
                    params=STRAT, session=FrameKlines(frame), now=frame.index[k],
                    ws_factory=FrameKlineSocket(frame.iloc[k:]), qcheck=0.02,
                    backfill=k, printer=lines.append, **kw)


def test_live_source_reads_bybit_only():
    assert live_source("bybit:ETHUSDT:15").symbol == "ETHUSDT"
    assert live_source("bybit:BTCUSDT:60").kind == "bybit"
    with pytest.raises(ValueError, match="live runs read Bybit"):
        live_source("yahoo:AAPL:1d")


def test_cli_live_defaults_to_shadow_and_refuses_two_modes(capsys):
    args = build_parser().parse_args(["live", "--strategy", "directional"])
    assert not (args.testnet or args.demo or args.mainnet) and args.on_exit == "cancel"
    assert args.data is None  # the directional strategy reads bybit:BTCUSDT:60 (cli_live)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["live", "--strategy", "directional", "--testnet",
                                   "--mainnet"])
    assert "not allowed with" in capsys.readouterr().err


def test_trading_without_keys_is_refused(monkeypatch, tiny_checkpoint, tmp_path):
    monkeypatch.delenv("BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)
    with pytest.raises(ValueError, match="BYBIT_API_KEY"):
        run_live("bybit:BTCUSDT:60", "testnet", model=tiny_checkpoint, out=tmp_path,
                 session=FrameKlines(pd.DataFrame()), printer=lambda *_: None)


@pytest.mark.slow
def test_shadow_prints_bars_saves_state_and_resumes(frame, tiny_checkpoint, tmp_path):
    lines: list[str] = []
    k = 200
    summary = shadow(frame, k, tmp_path, lines, model=tiny_checkpoint, stop_after=15)
    assert summary["bars"] == 15 and summary["killswitch"] is None
    text = "\n".join(lines)
    assert "shadow: nothing is sent" in text and "live from" in text
    assert text.count("| signal ") >= 15 and "order #" in text
    journal = [json.loads(x) for x in (tmp_path / "BTCUSDT" / "journal.jsonl").read_text()
               .splitlines()]
    placed = {pd.Timestamp(r["bar"]) for r in journal if r["status"] == "Submitted"}
    assert placed and min(placed) >= frame.index[k]  # no order on a backfilled bar
    assert (tmp_path / "BTCUSDT" / "state.json").exists()

    # a restart picks the state up and carries on from the bar after the saved one
    lines2: list[str] = []
    again = shadow(frame, k + 20, tmp_path, lines2, model=tiny_checkpoint, stop_after=5)
    assert again["bars"] == 5
    assert any(x.startswith("resuming from the state saved after") for x in lines2)
    # the shadow account carries on too: the first live bar shows the position it ended with
    first_bar = next(x for x in lines2 if "| signal " in x or "warming up" in x)
    assert f"position {summary['position']:g} " in first_bar


@pytest.mark.slow
def test_testnet_run_trades_on_the_fake_exchange_and_cancels_on_exit(
        frame, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("BYBIT_API_KEY", "k")
    monkeypatch.setenv("BYBIT_API_SECRET", "s")
    k = 200
    ex = FakeBybit(balance=10_000.0, price=float(frame.close.iloc[k - 1]))
    ex.klines = FrameKlines(frame)
    lines: list[str] = []
    sock = FrameKlineSocket(frame.iloc[k:], private=ex.ws_factory)
    summary = run_live("bybit:BTCUSDT:60", "testnet", model=tiny_checkpoint, out=tmp_path,
                       params=STRAT, session=ex.session(), ws_factory=sock, now=frame.index[k],
                       qcheck=0.02, backfill=k, printer=lines.append, stop_after=12)
    assert "TRADING" in lines[0] and "testnet" in lines[0]
    placed = [kw for name, kw in ex.calls if name == "place_order"]
    assert placed, "the strategy should have traded"
    assert summary["position"] == pytest.approx(ex.position[0])
    assert not [o for o in ex.orders.values() if o["orderStatus"] in ("New", "Untriggered")]
    journal = [json.loads(x) for x in (tmp_path / "BTCUSDT" / "journal.jsonl").read_text()
               .splitlines()]
    done = [r for r in journal if r["status"] == "Completed"]
    assert len(done) == len(placed)  # each order Bybit filled is in the journal
    assert all(r["predictions"].get("signal") is not None for r in done)


@pytest.mark.slow
def test_kill_switch_stops_a_live_run(frame, tiny_checkpoint, tmp_path):
    lines: list[str] = []
    summary = shadow(frame, 200, tmp_path, lines, model=tiny_checkpoint, stop_after=30,
                     limits={"max_position": 1e-6, "flatten": False})
    assert summary["killswitch"]["limit"] == "max_position"
    assert summary["bars"] < 30
    assert "kill switch" in lines[-1]


@pytest.mark.slow
def test_ctrl_c_cancels_resting_orders_and_saves_state(frame, tiny_checkpoint, tmp_path,
                                                       monkeypatch):
    import signal

    from s4_strategies.live import load_state

    monkeypatch.setenv("BYBIT_API_KEY", "k")
    monkeypatch.setenv("BYBIT_API_SECRET", "s")
    k = 200
    ex = FakeBybit(balance=10_000.0, price=float(frame.close.iloc[k - 1]))
    ex.klines = FrameKlines(frame)
    lines: list[str] = []
    filled = []

    def printer(line):
        lines.append(line)
        if "Completed" in line:
            filled.append(line)
        elif filled and "| signal " in line and not any("stopping" in x for x in lines):
            signal.raise_signal(signal.SIGINT)  # Ctrl-C, with stop and target orders resting

    params = dict(STRAT, stop_loss=0.05, take_profit=0.05)
    summary = run_live("bybit:BTCUSDT:60", "testnet", model=tiny_checkpoint, out=tmp_path,
                       params=params, session=ex.session(), now=frame.index[k],
                       ws_factory=FrameKlineSocket(frame.iloc[k:], private=ex.ws_factory),
                       qcheck=0.02, backfill=k, printer=printer, stop_after=35)
    assert any(x.startswith("stopping") for x in lines) and summary["bars"] < 35
    conditional = [o for o in ex.orders.values() if o["triggerPrice"]]
    assert conditional, "the entry should have placed a stop on the exchange"
    assert not [o for o in ex.orders.values() if o["orderStatus"] in ("New", "Untriggered")]
    assert any(x.startswith("cancelled ") for x in lines)
    saved = load_state(tmp_path / "BTCUSDT" / "state.json")
    assert pd.Timestamp(saved.bar["time"]) >= frame.index[k]


@pytest.mark.slow
def test_shadow_report_finds_the_backtest_of_the_same_bars_identical(frame, tiny_checkpoint,
                                                                     tmp_path):
    from s4_strategies.apps.shadow_report import shadow_report

    lines: list[str] = []
    shadow(frame, 200, tmp_path, lines, model=tiny_checkpoint, stop_after=25)
    journal = tmp_path / "BTCUSDT" / "journal.jsonl"
    out: list[str] = []
    report = shadow_report(journal, "bybit:BTCUSDT:60", model=tiny_checkpoint, frame=frame,
                           params=STRAT, out=tmp_path / "report", printer=out.append)
    assert report["agree"] and report["fills"]["matched"] == report["fills"]["n_a"] > 0
    assert "AGREE" in out[0]
    assert (tmp_path / "report" / "report.json").exists()
    # a backtest with other parameters is not the shadow run: the report says so
    other = shadow_report(journal, "bybit:BTCUSDT:60", model=tiny_checkpoint, frame=frame,
                          params=dict(STRAT, max_position=0.25), out=tmp_path / "r2",
                          tearsheet=False, printer=out.append)
    assert not other["agree"] and "DIFFER" in out[-2]


def test_a_restart_puts_the_stop_and_target_back_on_the_restored_position(frame,
                                                                          tiny_checkpoint,
                                                                          tmp_path):
    import backtrader as bt

    from s4_strategies.live import ShadowBroker, StateSaver
    from s4_strategies.strategies import S4DirectionalStrategy

    class AlwaysLong(S4DirectionalStrategy):
        def signal_to_target(self, signal, confidence, pred_vol):
            return 0.5

    def run(bars):
        cerebro = bt.Cerebro(stdstats=False, quicknotify=True)
        cerebro.adddata(feeds.ArrayData(dataname=bars), name="BTCUSDT")
        broker = ShadowBroker()
        broker.setcash(10_000.0)
        cerebro.setbroker(broker)
        cerebro.addstrategy(AlwaysLong, model=tiny_checkpoint, rule="argmax",
                            stop_loss=0.2, take_profit=0.2)
        cerebro.addanalyzer(StateSaver, path=tmp_path / "state.json")
        return cerebro.run(runonce=False)[0], broker

    first, _ = run(frame.iloc[:200])
    assert first.position.size > 0 and len(first._exits) == 2  # entered, exits working
    second, broker = run(frame)  # restart: the state holds the position, not the orders
    assert second.broker.getposition(second.data).size > 0
    placed = [r for r in broker.records if r["status"] == "Submitted"]
    assert {r["type"] for r in placed[:2]} == {"Stop", "Limit"}
    assert all(pd.Timestamp(r["bar"]) == frame.index[200] for r in placed[:2])
