"""``s4_strategies.sweep``: optstrategy's job as Ray tasks. The same table as a serial run,
safe with torch models after torch has run in the driver; a grid or an Optuna space; one bad
parameter set is a row with its error."""

from __future__ import annotations

import sys

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies import sweep

ANALYZERS = {"sharpe": bt.analyzers.SharpeRatio, "trades": bt.analyzers.TradeAnalyzer,
             "dd": (bt.analyzers.DrawDown, {})}


@pytest.fixture(scope="module")
def aapl():
    return feeds.load_embedded("yahoo:AAPL:1d")


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))


def test_a_grid_is_every_combination_in_order(aapl):
    table = sweep(bt.strategies.MA_CrossOver, datas=[aapl],
                  grid={"fast": [5, 10], "slow": [20, 40, 60]}, analyzers=ANALYZERS, serial=True,
                  fees=None)
    assert table[["fast", "slow"]].values.tolist() == [
        [5, 20], [5, 40], [5, 60], [10, 20], [10, 40], [10, 60]]
    assert {"value", "sharpe.sharperatio", "trades.total.closed", "dd.max.drawdown"} <= set(
        table.columns)
    assert (table["error"] == "").all() and table["value"].nunique() == 6
    # the row is what optstrategy-free backtrader prints for the same parameters
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=aapl))
    cerebro.addstrategy(bt.strategies.MA_CrossOver, fast=10, slow=40)
    cerebro.broker.setcash(100_000.0)
    cerebro.run()
    assert table.loc[4, "value"] == pytest.approx(cerebro.broker.getvalue(), rel=1e-12)


def test_a_bad_parameter_set_is_a_row_with_its_error(aapl):
    table = sweep(bt.strategies.MA_CrossOver, datas=[aapl], grid={"fast": [5, 10**6]},
                  serial=True)
    assert table.loc[0, "error"] == "" and table.loc[1, "error"] != ""
    assert np.isnan(table.loc[1, "value"])


def test_an_optuna_space_is_searched_for_the_objective(aapl):
    table = sweep(bt.strategies.MA_CrossOver, datas=[aapl], analyzers=ANALYZERS,
                  space={"fast": {"int": [3, 15]}, "slow": {"choice": [30, 60]}}, n_trials=6,
                  objective="sharpe.sharperatio", serial=True)
    assert len(table) == 6 and table["fast"].between(3, 15).all()
    assert set(table["slow"]) <= {30, 60}


@pytest.mark.parametrize("kwargs, match", [
    ({}, "strategy class .* or a cerebro_factory"),
    ({"strategy": bt.Strategy}, "grid or an Optuna space"),
    ({"strategy": bt.Strategy, "grid": {"a": [1]}}, "needs datas"),
    ({"strategy": bt.Strategy, "datas": [1], "grid": {"a": 1}}, "list of values"),
    ({"strategy": bt.Strategy, "datas": [1], "space": {"a": {"int": [1, 3]}}}, "n_trials"),
])
def test_wrong_calls_say_what_is_missing(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep(**kwargs, serial=True)


# -- on Ray -------------------------------------------------------------------------------
def _model_cerebro(params):
    """A directional strategy on the shipped S4D checkpoint (torch in every backtest)."""
    import feeds as f
    from s4_strategies import S4DirectionalStrategy, default_checkpoint, load_model

    df = f.load_embedded("bybit:BTCUSDT:60", fromdate="2024-06-01", todate="2024-06-20")
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=df, timeframe=bt.TimeFrame.Minutes,
                                        compression=60))
    cerebro.addstrategy(S4DirectionalStrategy, model=load_model(default_checkpoint()),
                        **params)
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    cerebro.broker.setcash(100_000.0)
    return cerebro


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_on_ray_the_same_table_and_safe_after_torch_ran_here(aapl, monkeypatch):
    import ray
    import torch

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers lack tests/
    torch.ones(64, 64) @ torch.ones(64, 64)  # torch has run (and made threads) in the driver
    grid = {"rule": ["auto", "argmax"], "min_change": [0.05, 0.2]}
    serial = sweep(cerebro_factory=_model_cerebro, grid=grid, serial=True)
    on_ray = sweep(cerebro_factory=_model_cerebro, grid=grid, workers=2)
    assert (on_ray["error"] == "").all(), on_ray["error"].tolist()
    _same(on_ray, serial)
    assert not ray.is_initialized()  # the local Ray it started is stopped
    plain = sweep(bt.strategies.MA_CrossOver, datas=[aapl], grid={"fast": [5, 10]},
                  analyzers=ANALYZERS, workers=2)
    _same(plain, sweep(bt.strategies.MA_CrossOver, datas=[aapl], grid={"fast": [5, 10]},
                       analyzers=ANALYZERS, serial=True))
