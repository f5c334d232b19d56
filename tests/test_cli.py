import json

import numpy as np
import pytest

from s4_strategies.apps.cli import main


@pytest.mark.slow
def test_backtest_directional_writes_metrics_and_tearsheet(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "dir"
    rc = main(["backtest", "--strategy", "directional", "--data", "bybit:BTCUSDT:60",
               "--model", str(tiny_checkpoint), "--from", "2021-07-01", "--to", "2021-08-31",
               "--params", '{"conf_threshold": 0.0}', "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "Sharpe" in printed and "fees paid" in printed
    m = json.loads((out / "metrics.json").read_text())
    assert m["strategy"] == "directional" and m["metrics"]["periods_per_year"] == 8760
    assert (out / "tearsheet.html").stat().st_size > 50_000
    assert (out / "equity_drawdown.png").exists()
    assert m["trades"]["fees_paid"] > 0


@pytest.mark.slow
def test_backtest_portfolio(tiny_checkpoint, tmp_path):
    out = tmp_path / "pf"
    rc = main(["backtest", "--strategy", "portfolio",
               "--data", "bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SOLUSDT:60",
               "--model", str(tiny_checkpoint), "--from", "2021-09-01", "--to", "2021-11-30",
               "--params", '{"conf_threshold": 0.0}', "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert np.isfinite(m["final_value"]) and m["data"][2] == "bybit:SOLUSDT:60"


@pytest.mark.slow
def test_backtest_market_making_on_ticks(tmp_path, capsys):
    out = tmp_path / "mm"
    rc = main(["backtest", "--strategy", "market-making", "--data", "binance:BTCUSDT:trades",
               "--params", '{"max_events": 3000}', "--out", str(out)])
    assert rc == 0
    assert "spread capture" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["metrics"]["reconciles"] is True


@pytest.mark.slow
def test_compare_quick_runs_and_reports(tmp_path):
    from s4_strategies.training.compare import run_comparison

    res = run_comparison(train=("2021-01-01", "2021-05-31"), test=("2021-07-01", "2021-08-31"),
                         quick=True, models=["s4d", "lstm"], out=tmp_path, log=lambda *_: None)
    names = [r["model"] for r in res["rows"]]
    assert names == ["Buy & hold", "S4D", "LSTM"]
    for row in res["rows"][1:]:
        assert isinstance(row["trades"], int) and row["us_per_bar"] > 0
        assert row["train_seconds"] > 0
        # a win rate exactly when there were trades, and a share of them
        assert (row["win_rate"] is None) == (row["trades"] == 0)
        if row["trades"]:
            assert 0.0 <= row["win_rate"] <= 1.0
        lo, hi = row["sharpe_ci"]
        assert lo <= row["sharpe"] <= hi
    assert "| S4D |" in (tmp_path / "compare.md").read_text()
    assert res["periods"]["test"][0].startswith("2021-07-01")


def test_unknown_strategy_is_refused():
    with pytest.raises(SystemExit):
        main(["backtest", "--strategy", "martingale"])
