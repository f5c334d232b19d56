"""``s4trade live --strategy multi-asset``: one model over BTC/ETH/SOL in shadow mode, on
recorded candles served by the stand-ins of the Bybit clients (each bar time's candles of the
three symbols arrive one by one, in a random order), one state file for the shared stream,
a restart that continues it; and ``SharedStream``'s rules for live bars, with fake datas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.apps.cli import build_parser
from s4_strategies.apps.live import run_live
from s4_strategies.indicators.multi import SharedStream
from s4_strategies.indicators.s4 import StateMismatch
from s4_strategies.model import load_multi
from tests.live_helpers import FramesKlines, FramesKlineSocket

ASSETS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
SPEC = ",".join(f"bybit:{a}:60" for a in ASSETS)
STRAT = {"rebalance": 1, "min_trade": 0.0}


@pytest.fixture(scope="module")
def frames():
    return {a: feeds.load_embedded(f"bybit:{a}:60", "2022-01-01", "2022-01-20")[
        ["open", "high", "low", "close", "volume"]] for a in ASSETS}


def shadow(frames, k, out, lines, model, **kw):
    live = {a: f.iloc[k:] for a, f in frames.items()}
    return run_live(SPEC, "shadow", strategy="multi-asset", model=model, out=out,
                    params=STRAT, session=FramesKlines(frames), now=frames[ASSETS[0]].index[k],
                    ws_factory=FramesKlineSocket(live), qcheck=0.02, backfill=k,
                    printer=lines.append, **kw)


def journal_weights(path) -> dict:
    """(bar, symbol) -> the weight the model gave when the order was placed."""
    return {(pd.Timestamp(r["bar"]), r["symbol"]): r["predictions"]["weight"]
            for r in map(json.loads, path.read_text().splitlines())
            if r["status"] == "Submitted"}


def test_cli_live_takes_the_multi_asset_strategy():
    args = build_parser().parse_args(["live", "--strategy", "multi-asset"])
    assert args.data is None and not args.testnet  # the checkpoint's symbols, shadow


def test_multi_asset_trades_in_shadow_mode_only(tiny_multi_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("BYBIT_API_KEY", "k")
    monkeypatch.setenv("BYBIT_API_SECRET", "s")
    with pytest.raises(ValueError, match="shadow mode"):
        run_live(SPEC, "testnet", strategy="multi-asset", model=tiny_multi_checkpoint,
                 out=tmp_path, printer=lambda *_: None)
    with pytest.raises(ValueError, match="not SPY"):
        run_live("bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SPY:60", "shadow",
                 strategy="multi-asset", model=tiny_multi_checkpoint, out=tmp_path,
                 printer=lambda *_: None)


@pytest.mark.slow
def test_shadow_run_matches_the_batch_model_and_resumes(frames, tiny_multi_checkpoint,
                                                        tmp_path):
    p = load_multi(tiny_multi_checkpoint)
    batch = p.predict(frames)
    k, lines = 200, []
    first = shadow(frames, k, tmp_path, lines, tiny_multi_checkpoint, stop_after=10)
    text = "\n".join(lines)
    assert "multi-asset on BTCUSDT, ETHUSDT, SOLUSDT" in text and "shadow" in text
    assert "live from 2022-01-09 08:00 UTC" in text and first["bars"] == 10
    assert text.count(" | value ") == 10 and "order #" in text and first["late_bars"] == 0
    folder = tmp_path / "BTCUSDT-ETHUSDT-SOLUSDT"
    assert sorted(f.name for f in folder.iterdir() if not f.name.startswith(".")) == [
        "journal.jsonl", "state.json"]  # one state file for the shared stream
    placed = journal_weights(folder / "journal.jsonl")
    assert placed and min(t for t, _ in placed) >= frames["BTCUSDT"].index[k]  # live bars only
    for (t, a), w in placed.items():  # the shared stream saw what the batch model sees
        assert w == pytest.approx(batch[a].loc[t, "weight"], abs=1e-6)

    # a restart continues the saved stream from the bar after it
    lines2 = []
    again = shadow(frames, k + 14, tmp_path, lines2, tiny_multi_checkpoint, stop_after=4)
    assert any(x.startswith("resuming from the state saved after the bar of 2022-01-09")
               for x in lines2) and again["bars"] == 4
    later = {key: w for key, w in journal_weights(folder / "journal.jsonl").items()
             if key not in placed}
    assert later and min(t for t, _ in later) >= frames["BTCUSDT"].index[k + 14]
    for (t, a), w in later.items():
        assert w == pytest.approx(batch[a].loc[t, "weight"], abs=1e-6)


# -- SharedStream's rules, with datas that are plain objects -----------------------------
class FakeData:
    """What SharedStream reads of a backtrader data: length, current bar, islive()."""

    def __init__(self, name, live=True):
        self._name, self._live, self.rows = name, live, []

    def push(self, ts, row):
        self.rows.append((pd.Timestamp(ts), row))

    def islive(self):
        return self._live

    def __len__(self):
        return len(self.rows)

    def __getattr__(self, field):
        if field in ("open", "high", "low", "close", "volume", "datetime"):
            ts, row = self.rows[-1]
            if field == "datetime":
                import backtrader as bt

                return [bt.date2num(ts.to_pydatetime().replace(tzinfo=None))]
            return [float(row[field])]
        raise AttributeError(field)


def test_a_bar_time_is_stepped_once_every_symbol_showed_it(frames, tiny_multi_checkpoint):
    p = load_multi(tiny_multi_checkpoint)
    datas = {a: FakeData(a) for a in ASSETS}
    shared = SharedStream(p, datas)
    idx = frames["BTCUSDT"].index[:30]
    for a in ASSETS:  # the history's first bars come together (a data not started: len 0)
        datas[a].push(idx[0], frames[a].loc[idx[0]])
    assert shared.update() and sorted(shared.bars) == sorted(ASSETS)
    stepped = []
    for i, t in enumerate(idx[1:], start=1):
        for a in ASSETS:  # then live candles, one symbol at a time
            if a == "SOLUSDT" and i == 5:
                continue  # a gap: SOL has no bar at idx[5]
            datas[a].push(t, frames[a].loc[t])
            if shared.update():
                stepped.append((i, a, sorted(shared.bars)))
    # each time is stepped on its last symbol's candle; idx[5] waited for the next time's
    # first candle and went without SOL
    assert shared.steps == 30 and shared.late == 0
    assert [(i, a) for i, a, _ in stepped[:4]] == [(i, "SOLUSDT") for i in range(1, 5)]
    assert stepped[4] == (6, "BTCUSDT", ["BTCUSDT", "ETHUSDT"])
    assert stepped[5] == (6, "SOLUSDT", sorted(ASSETS))
    # the same bars through the stream directly (the backtest's way) give the same state
    ref = p.stream()
    for i, t in enumerate(idx):
        bars = {a: (*frames[a].loc[t].to_numpy(), t.hour, float(t.dayofweek)) for a in ASSETS
                if not (a == "SOLUSDT" and i == 5)}
        want = ref.step(bars)
    np.testing.assert_allclose(
        np.concatenate([np.ravel(x) for x in shared.stream.get_state()["model"]["state"]]),
        np.concatenate([np.ravel(x) for x in ref.get_state()["model"]["state"]]), atol=1e-12)
    assert shared.latest.keys() == want.keys()


def test_resume_refuses_a_state_of_other_bars(frames, tiny_multi_checkpoint):
    p = load_multi(tiny_multi_checkpoint)
    datas = {a: FakeData(a, live=False) for a in ASSETS}
    shared = SharedStream(p, datas)
    idx = frames["BTCUSDT"].index
    for t in idx[:20]:
        for a in ASSETS:
            datas[a].push(t, frames[a].loc[t])
        shared.update()
    saved = shared.get_state()
    assert saved["time"] == datas["BTCUSDT"].datetime[0] and saved["steps"] == 20

    def replay(bars_at_saved, after):
        again = {a: FakeData(a, live=False) for a in ASSETS}
        s = SharedStream(p, again)
        s.resume(saved)
        for t in idx[:19]:
            for a in ASSETS:
                again[a].push(t, frames[a].loc[t])
            s.update()
        for a in ASSETS:
            again[a].push(idx[19], bars_at_saved[a])
        s.update()
        for a in ASSETS:
            again[a].push(after, frames[a].loc[idx[20]])
        s.update()
        return s

    ok = replay({a: frames[a].loc[idx[19]] for a in ASSETS}, idx[20])
    assert ok.steps == 21 and not ok.resuming
    changed = {a: frames[a].loc[idx[19]] for a in ASSETS}
    changed["ETHUSDT"] = changed["ETHUSDT"] * 1.01
    with pytest.raises(StateMismatch, match="ETHUSDT: the feed's bar at"):
        replay(changed, idx[20])
    with pytest.raises(StateMismatch, match="not one bar spacing"):
        replay({a: frames[a].loc[idx[19]] for a in ASSETS}, idx[22])
    other = SharedStream(p, {a: FakeData(a + "X") for a in ASSETS})
    with pytest.raises(StateMismatch, match="the datas"):
        other.resume(saved)
