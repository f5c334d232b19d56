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
    assert m["market_making"]["reconciles"] is True
    assert m["strategy"] == "market-making" and "metrics" in m and "final_value" in m


@pytest.mark.slow
def test_compare_quick_runs_and_reports(tmp_path):
    import json

    from s4_strategies.training.compare import run_comparison

    lines = []
    res = run_comparison(train=("2021-01-01", "2021-05-31"), test=("2021-07-01", "2021-08-31"),
                         quick=True, models=["s4d", "gru"], seeds=2, out=tmp_path,
                         log=lines.append)
    assert not any("nan" in line.lower() for line in lines), lines  # "–", never "+nan"
    skill = {r["model"]: r for r in res["skill"]}
    assert list(skill) == ["Majority class", "Class prior", "Linear (ridge / logistic, tuned)",
                           "LightGBM (tuned)", "Trailing vol (24 bars)", "EWMA", "HAR", "S4D",
                           "GRU"]
    for name in ("S4D", "GRU"):
        row = skill[name]
        assert row["seeds"] == 2 and len(row["per_seed"]["ic_5"]) == 2
        lo, hi = row["ic_5_ci"]
        assert lo <= hi and -1 <= lo and hi <= 1
        assert row["log_loss"] > 0 and 0 <= row["accuracy"] <= 1 and row["us_per_bar"] > 0
    # the prior's log-loss is the entropy of the training classes, the majority's accuracy
    # the share of the majority class: both are scored like the models
    assert "log_loss" in skill["Class prior"] and "ic_5" not in skill["Class prior"]
    v = res["verdicts"]
    assert {"ic_5", "log_loss", "vol", "trading"} <= set(v["mcs"])
    assert {(p["model"], p["against"]) for p in v["paired"]} == {
        ("S4D", "Linear (ridge / logistic, tuned)"), ("GRU", "Linear (ridge / logistic, tuned)"),
        ("S4D", "GRU")}
    assert all(0 <= p["p_holm"] <= 1 for p in v["paired"])
    assert set(res["baseline_settings"]) >= {"Linear (ridge / logistic, tuned)", "EWMA", "HAR"}
    trading = res["trading"]
    assert [(r["model"], r["rule"]) for r in trading][:3] == [
        ("Buy & hold", "always long"), ("Linear (ridge / logistic, tuned)", "cost band"),
        ("Linear (ridge / logistic, tuned)", "argmax (ref.)")]
    bh = trading[0]
    assert bh["funding_paid"] > 0 and bh["trades"] == 1
    for row in trading[1:]:
        assert row["rule"] in ("cost band", "argmax (ref.)")
        if row["rule"] == "cost band":
            assert all(r["enter"] >= 0 for r in row["rules"])
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["funding_rate_per_8h"] == 1e-4
    md = (tmp_path / "compare.md").read_text()
    assert md.index("### Skill") < md.index("### Which models") < md.index("### Trading")
    assert "| S4D | 2 |" in md and " ± " in md
    assert res["periods"]["test"][0].startswith("2021-07-01")
    # the results page's tables are written from the saved run by the committed script
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    try:
        import compare_models
        import page_block
    finally:
        sys.path.pop(0)
    assert page_block.page_for("compare").as_posix().endswith("docs/results/compare.md")
    page = tmp_path / "compare.md"
    page.write_text("<!-- compare:begin -->\nOLD BLOCK\n<!-- compare:end -->\n")
    assert compare_models.write_block(str(tmp_path / "compare.json"), page) == page
    text = page.read_text()
    assert "OLD BLOCK" not in text and "### Which models can be told apart" in text
    assert "written into this page by `python scripts/compare_models.py --write" in text
    page.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="compare:begin"):
        compare_models.write_block(str(tmp_path / "compare.json"), page)
    assert page.read_text() == "no markers here\n"  # nothing appended where no one looks


def test_unknown_strategy_is_refused():
    with pytest.raises(SystemExit):
        main(["backtest", "--strategy", "martingale"])


# -- the backtest period against what the checkpoint has seen ------------------------------
class _Seen:
    """A stand-in for a loaded model: only its meta periods and label horizon matter here."""

    class label_spec:  # noqa: N801
        max_horizon = 24

    meta = {"periods": {"train": ["2021-01-01 00:00:00+00:00", "2021-05-24 11:00:00+00:00"],
                        "val": ["2021-05-25 12:00:00+00:00", "2021-05-31 23:00:00+00:00"]}}


def _frames(*names):
    import feeds

    return {n: feeds.load_embedded(n) for n in names}


def test_default_period_starts_after_training_validation_and_labels():
    import pandas as pd

    from s4_strategies.apps.backtest import resolve_period, seen_span

    seen = seen_span(_Seen())
    start, end, warns = resolve_period(seen, _frames("bybit:BTCUSDT:60"))
    # the last validation label reads 24 bars past 2021-05-31 23:00
    assert start == pd.Timestamp("2021-06-02 00:00", tz="UTC") and end is None and not warns
    # several datas: the latest first-unseen bar of them all (SOLUSDT starts in October, long
    # after the checkpoint's last label: its every bar is unseen)
    start, _, _ = resolve_period(seen, _frames("bybit:BTCUSDT:60", "bybit:SOLUSDT:60"))
    assert start == pd.Timestamp("2021-10-15 00:00", tz="UTC")


@pytest.mark.parametrize("fromdate, todate, in_sample", [
    ("2021-07-01", None, False),
    ("2021-06-02 00:00", "2021-06-30", False),
    ("2021-06-01 12:00", None, True),  # inside the label horizon of the last validation bar
    ("2021-03-01", "2021-03-31", True),  # inside training
    ("2020-06-01", "2020-12-31", False),  # before the checkpoint's data
])
def test_requested_periods_that_overlap_get_a_loud_warning(fromdate, todate, in_sample):
    from s4_strategies.apps.backtest import resolve_period, seen_span

    _, _, warns = resolve_period(seen_span(_Seen()), _frames("bybit:BTCUSDT:60"), fromdate,
                                 todate)
    assert bool(warns) == in_sample
    if in_sample:
        assert warns[0].startswith("IN-SAMPLE") and "2021-06-02 00:00" in warns[0]


def test_no_bars_after_the_checkpoint_is_a_clear_error():
    import feeds
    from s4_strategies.apps.backtest import resolve_period, seen_span

    frames = {"bybit:BTCUSDT:60": feeds.load_embedded("bybit:BTCUSDT:60", todate="2021-06-01")}
    with pytest.raises(feeds.DataError, match="no bars after the checkpoint"):
        resolve_period(seen_span(_Seen()), frames)


@pytest.mark.slow
def test_backtest_defaults_to_out_of_sample_and_warns_in_sample(tiny_checkpoint, tmp_path,
                                                                capsys):
    out = tmp_path / "oos"
    rc = main(["backtest", "--strategy", "directional", "--model", str(tiny_checkpoint),
               "--to", "2021-07-15", "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.err and "out of sample" in captured.out
    m = json.loads((out / "metrics.json").read_text())
    assert m["from"].startswith("2021-06-02 00:00") and m["to"].startswith("2021-07-15 23:59")
    assert m["in_sample"] is False and m["period_default"] is True

    out = tmp_path / "ins"
    rc = main(["backtest", "--strategy", "directional", "--model", str(tiny_checkpoint),
               "--from", "2021-04-01", "--to", "2021-05-15", "--out", str(out)])
    assert rc == 0
    captured = capsys.readouterr()
    assert "WARNING: IN-SAMPLE" in captured.err and "IN-SAMPLE" in captured.out
    m = json.loads((out / "metrics.json").read_text())
    assert m["in_sample"] is True and m["warnings"]


@pytest.mark.slow
def test_train_and_backtest_on_a_csv_file(tmp_path, capsys):
    import feeds

    csv = tmp_path / "mybars.csv"
    feeds.load_embedded("bybit:ETHUSDT:60", "2021-04-01", "2021-09-30 23:00").to_csv(csv)
    ckpt = tmp_path / "m.pt"
    rc = main(["train", "--data", str(csv), "--from", "2021-04-01", "--to", "2021-07-31",
               "--layer", "gru", "--epochs", "1", "--d-model", "8", "--n-layers", "1",
               "--seq-len", "128", "--batch-size", "4", "--quiet", "--out", str(ckpt)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["data"] == str(csv) and summary["periods"]["val"][1].startswith("2021-07-31 23")
    # printed numbers are rounded
    assert summary["best_val_loss"] == round(summary["best_val_loss"], 4)
    out = tmp_path / "bt"
    rc = main(["backtest", "--strategy", "directional", "--data", str(csv), "--model",
               str(ckpt), "--params", '{"conf_threshold": 0.0}', "--out", str(out)])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["from"].startswith("2021-08-02 00:00") and m["in_sample"] is False
    assert m["metrics"]["periods_per_year"] == 8760
