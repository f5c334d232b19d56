"""The multi-asset model from the command line: ``s4trade train --multi`` (an "s4-multi"
checkpoint with the recipe's metadata, the training curve and the rebalancing chosen on
validation), ``s4trade backtest --strategy multi-asset`` (metrics, a tear sheet against the
equal-weight buy and hold, the weights held as a picture, the IN-SAMPLE rule), and the
arithmetic behind the choice (``training.allocation``) against hand-computed cases and
against backtrader itself."""

from __future__ import annotations

import datetime as dt
import json

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import torch

import feeds
from analyzers.quantstats_analyzer import equal_weight_value
from s4_strategies import S4MultiAssetStrategy
from s4_strategies.apps.cli import main
from s4_strategies.model import load_multi
from s4_strategies.training.allocation import rebalance_path, select_allocation
from tests.conftest import MULTI_DATA as DATA


# -- the arithmetic ------------------------------------------------------------------------
def test_rebalance_path_by_hand():
    # two assets; B has no bar (not listed) at bar 0; rebalance every 2 bars
    close = np.array([[100.0, np.nan], [110.0, 50.0], [99.0, 55.0], [99.0, 55.0]])
    w = np.array([[0.5, np.nan], [0.9, 0.1], [0.3, 0.6], [0.3, 0.6]])
    fee = 0.001
    p = rebalance_path(w, close, rebalance=2, min_trade=0.0, fee=fee)
    # bar 0: buy 0.5 of A (B has no bar). Bar 1 is no rebalance: A earns +10 %, less the fee
    r1 = 0.5 * 0.10 - fee * 0.5
    hA = 0.5 * 1.10 / (1 + r1)  # A's weight drifts up
    # bar 2: A falls back to 99 with the weight held since bar 1, then the rebalance to
    # (0.3, 0.6), whose fee bar 3 pays (its prices are flat)
    r2 = hA * (99 / 110 - 1)
    hA2 = hA * (99 / 110) / (1 + r2)
    turn2 = abs(0.3 - hA2) + 0.6
    r3 = 0.0 - fee * turn2
    last = -fee * (0.3 + 0.6) / (1 + r3)  # closing what is held at the end, after the fee
    np.testing.assert_allclose(p["returns"], [0.0, r1, r2, r3 + last], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p["held"][2], [0.3, 0.6])
    assert p["trades"] == 3 and p["rebalances"] == 2
    # a change under min_trade is skipped, an exit never is
    q = rebalance_path(np.array([[0.5], [0.52], [0.0]]), np.full((3, 1), 10.0), 1, 0.05, fee=0)
    np.testing.assert_allclose(q["held"][:, 0], [0.5, 0.5, 0.0])
    # capped at max_weight, never short
    z = rebalance_path(np.array([[0.9, -0.2]]), np.ones((1, 2)), 1, 0.0, max_weight=0.6)
    np.testing.assert_allclose(z["held"][0], [0.6, 0.0])


def test_select_allocation_prefers_the_cheaper_of_equal_cells():
    rng = np.random.default_rng(3)
    one = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 500)))
    close = np.stack([one, 2 * one], axis=1)  # two assets moving together
    w = np.tile([0.5, 0.5], (500, 1))  # fully invested: nothing drifts, every cell holds alike
    best, table = select_allocation(w, close, fee=0.0, grid=((1, 0.0), (24, 0.0), (24, 0.05)))
    assert (best["rebalance"], best["min_trade"]) == (24, 0.05)  # equal Sharpe: fewer trades
    assert table["eligible"] == 3 and "best net Sharpe" in table["note"]
    none, table = select_allocation(np.zeros((50, 2)), close[:50])
    assert none is None and "fallback" in table["note"]


def test_equal_weight_buy_and_hold_with_a_late_starter():
    close = pd.DataFrame({"A": [10.0, 11.0, 12.0, 9.0], "B": [np.nan, np.nan, 4.0, 5.0]})
    value = equal_weight_value(close)
    # B's half is cash until its first close (bar 2), then it moves with B
    np.testing.assert_allclose(value, [1.0, 0.5 * 1.1 + 0.5, 0.5 * 1.2 + 0.5,
                                       0.5 * 0.9 + 0.5 * 1.25])


# -- the command line ----------------------------------------------------------------------
@pytest.fixture
def multi_ckpt(tiny_multi_checkpoint):  # s4trade train --multi (tests/conftest.py)
    return tiny_multi_checkpoint


def test_train_multi_writes_a_sealed_checkpoint_with_the_recipe(multi_ckpt, capsys):
    payload = torch.load(multi_ckpt, weights_only=True)
    assert payload["format"] == "s4-multi/1" and len(payload["sha256"]) == 64
    p = load_multi(multi_ckpt)
    assert p.assets == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]  # the names backtest gives the datas
    meta = p.meta
    assert meta["data"]["SOLUSDT"] == "bybit:SOLUSDT:60"
    assert meta["first_bars"]["SOLUSDT"].startswith("2021-10-15")  # joined late
    assert meta["periods"]["val"][1].startswith("2021-12-31")
    assert len(meta["history"]) == meta["train_config"]["epochs"] or \
        len(meta["history"]) <= meta["train_config"]["epochs"]
    assert meta["recipe"]["optimizer"] == "AdamW" and meta["recipe"]["steps_taken"] > 0
    dec = meta["decision"]
    assert dec["rebalance"] in (1, 4, 12, 24, 48) and len(dec["cells"]) == 20
    assert dec["chosen"]["rebalance"] == dec["rebalance"]
    # a checkpoint changed after it was saved is refused (the sha256)
    torch.save({**payload, "meta": {**payload["meta"], "assets": ["X"]}}, multi_ckpt.with_name(
        "edited.pt"))
    from s4_strategies.model import CheckpointError

    with pytest.raises(CheckpointError, match="sha256"):
        load_multi(multi_ckpt.with_name("edited.pt"))


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", DATA], "add --multi"),
    (["train", "--multi", "--data", "bybit:BTCUSDT:60"], "two or more"),
    (["train", "--multi", "--data", DATA, "--layer", "lstm"], "SSM encoder"),
    (["train", "--multi", "--data", "bybit:BTCUSDT:60,bybit:BTCUSDT:60:linear"], "twice"),
])
def test_train_multi_refuses_what_it_cannot_train(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.slow
def test_backtest_multi_asset_out_of_sample(multi_ckpt, tmp_path, capsys):
    out = tmp_path / "bt"
    assert main(["backtest", "--strategy", "multi-asset", "--model", str(multi_ckpt),
                 "--to", "2022-01-20", "--out", str(out)]) == 0  # --data: the checkpoint's
    printed = capsys.readouterr()
    assert "(out of sample)" in printed.out and "IN-SAMPLE" not in printed.err
    assert "equal-weight buy & hold of bybit:BTCUSDT:60, bybit:ETHUSDT:60" in printed.out
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"] == DATA.split(",") and m["from"].startswith("2022-01-02")
    assert m["benchmark"].startswith("equal-weight buy & hold")
    assert {"tearsheet.html", "weights.png", "weights.csv", "equity_drawdown.png"} <= {
        f.name for f in out.iterdir()}
    held = pd.read_csv(out / "weights.csv", index_col=0)
    assert list(held.columns) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert (held.to_numpy() >= 0).all() and (held.sum(axis=1) <= 1 + 1e-6).all()
    assert (held.to_numpy() > 0).any()


@pytest.mark.slow
def test_backtest_multi_asset_in_sample_is_loud(multi_ckpt, tmp_path, capsys):
    assert main(["backtest", "--strategy", "multi-asset", "--model", str(multi_ckpt),
                 "--data", DATA, "--from", "2021-12-01", "--to", "2021-12-20",
                 "--out", str(tmp_path / "in")]) == 0
    printed = capsys.readouterr()
    assert "IN-SAMPLE" in printed.out and "WARNING: IN-SAMPLE" in printed.err
    assert json.loads((tmp_path / "in" / "metrics.json").read_text())["in_sample"] is True
    # datas the model does not trade are named
    assert main(["backtest", "--strategy", "multi-asset", "--model", str(multi_ckpt),
                 "--data", "bybit:BTCUSDT:60,bybit:ETHUSDT:60,yahoo:SPY:1d",
                 "--out", str(tmp_path / "x")]) == 2
    assert "trades ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'], not SPY" in capsys.readouterr().err


def test_rebalance_path_is_the_strategy_in_backtrader(multi_ckpt):
    """With orders filled at the close they were decided on (cheat-on-close) the strategy's
    account follows ``rebalance_path`` of the batch weights bar for bar, fees included."""
    p = load_multi(multi_ckpt)
    frames = {a: feeds.load_embedded(f"bybit:{a}:60", "2021-10-01", "2021-11-10 23:00")
              for a in p.assets}
    cerebro = bt.Cerebro(stdstats=False)
    for a in p.assets:
        cerebro.adddata(feeds.EmbeddedData(name=f"bybit:{a}:60", fromdate=dt.datetime(2021, 10, 1),
                                           todate=dt.datetime(2021, 11, 10, 23)), name=a)
    cerebro.broker.setcash(100_000.0)
    cerebro.broker.set_coc(True)

    class Value(bt.Analyzer):
        def start(self):
            self.values = []

        def next(self):
            self.values.append(self.strategy.broker.getvalue())

        prenext = next

    cerebro.addstrategy(S4MultiAssetStrategy, model=p, rebalance=6, min_trade=0.0)
    cerebro.addanalyzer(Value, _name="value")
    strat = cerebro.run()[0]
    assert strat.every == 6 and not strat.failed_orders and strat.rebalances > 50
    pred = p.predict(frames)
    index = pred["BTCUSDT"].index
    w = np.stack([pred[a]["weight"].to_numpy() for a in p.assets], axis=1)
    close = np.stack([frames[a]["close"].reindex(index).to_numpy() for a in p.assets], axis=1)
    path = rebalance_path(w, close, 6, 0.0, fee=strat.broker.getcommissioninfo(
        strat.datas[0]).p.commission)
    want = 100_000.0 * np.cumprod(1.0 + path["returns"])[:-1]  # the last bar pays no close-out
    got = np.asarray(strat.analyzers.value.values)[:-1]
    assert len(got) == len(want) and np.isnan(w[:, 2]).sum() > 300  # SOL joined late
    np.testing.assert_allclose(got, want, rtol=1e-7)


def test_train_multi_prints_its_training_curve(tmp_path, capsys):
    """As the single-asset ``train``: stdout is the JSON summary, stderr the per-epoch curve
    of every head with the kept epoch marked."""
    from tests.conftest import MULTI_TRAIN

    argv = [a for a in MULTI_TRAIN if a != "--quiet"]
    argv[argv.index("--steps-per-epoch") + 1] = "2"
    assert main([*argv, "--out", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr()
    best = json.loads(out.out)["best_epoch"]
    lines = out.err.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith("training curve"))
    head, rows = lines[i + 1].split(), lines[i + 2:i + 4]
    assert head[:2] == ["epoch", "steps"] and "next_bar" in head
    assert [r.split()[0] for r in rows].count(f"{best}*") == 1
