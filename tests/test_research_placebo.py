"""The placebo (research.placebo): bars whose returns carry no direction keep the volatility
exactly, and a research run reads its real numbers against the placebo runs' null."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.training import skill_report, verdicts
from s4_strategies.training.research import parse_spec
from s4_strategies.training.research.engine import SerialExecutor
from s4_strategies.training.research.placebo import (
    block_permute,
    place,
    placebo_frames,
    sign_flip,
)
from s4_strategies.training.research.run import research


@pytest.fixture(scope="module")
def bars():
    return feeds.load_embedded("yahoo:AAPL:1d").iloc[:600]


def _rel(df):
    logs = np.log(df[["open", "high", "low", "close"]].to_numpy())
    return logs[1:] - logs[:-1, 3:4]  # each bar's path from the previous close


def test_the_flip_keeps_volatility_and_draws_a_coin_for_each_sign(bars):
    flip = sign_flip(bars, seed=1)
    a, b = _rel(bars), _rel(flip)
    assert np.abs(b[:, 3]) == pytest.approx(np.abs(a[:, 3]))  # |return| kept
    assert (b[:, 1] - b[:, 2]) == pytest.approx(a[:, 1] - a[:, 2])  # the range kept
    assert np.abs(b[:, 0]) == pytest.approx(np.abs(a[:, 0]))  # the gap kept
    assert (flip["low"] <= flip[["open", "close"]].min(axis=1) + 1e-9).all()
    assert (flip["high"] >= flip[["open", "close"]].max(axis=1) - 1e-9).all()
    flipped = np.sign(a[:, 3]) != np.sign(b[:, 3])
    assert 0.4 < flipped[a[:, 3] != 0].mean() < 0.6
    assert flip["volume"].equals(bars["volume"]) and flip.index.equals(bars.index)
    assert flip.iloc[0].equals(bars.iloc[0])
    assert not sign_flip(bars, seed=2)["close"].equals(flip["close"])


def test_blocks_shuffle_whole_bars(bars):
    perm = block_permute(bars, seed=3, block=20)
    a, b = _rel(bars), _rel(perm)
    assert sorted(a[:, 3].round(12)) == sorted(b[:, 3].round(12))
    assert not np.allclose(a[:, 3], b[:, 3])
    i = int(np.flatnonzero(~np.isclose(a[:, 3], b[:, 3]))[0])  # a block moved with its volume
    j = int(np.flatnonzero(np.isclose(a[:, 3], b[i, 3]))[0])
    assert perm["volume"].iloc[i + 1] == bars["volume"].iloc[j + 1]
    with pytest.raises(ValueError, match="kind"):
        placebo_frames({"x": bars}, 1, kind="shuffle")


def test_the_real_number_is_placed_in_the_null():
    null = [{"m|ic_5": v, "all|pbo": v} for v in (0.0, 0.1, 0.2, 0.3)]
    out = place({"m|ic_5": 0.25, "all|pbo": 0.05, "gone|dsr": 1.0}, null)
    assert set(out) == {"m|ic_5", "all|pbo"}  # nothing to compare a statistic the null lacks
    assert out["m|ic_5"]["percentile"] == 0.75 and out["m|ic_5"]["p"] == pytest.approx(2 / 5)
    assert out["all|pbo"]["p"] == pytest.approx(2 / 5)  # PBO: lower is better
    assert place({"m|ic_5": 0.1}, null)["m|ic_5"]["percentile"] == pytest.approx(0.375)


def test_a_research_run_with_a_placebo(tmp_path, monkeypatch):
    monkeypatch.setattr(verdicts, "REPS", 100)  # the mechanics, not the last decimal
    monkeypatch.setattr(skill_report, "N_BOOT", 100)
    spec = parse_spec({
        "name": "placebo", "datasets": ["yahoo:AAPL:1d"],
        "features": {"return_windows": [1, 5, 20], "vol_windows": [20, 60],
                     "volume_window": 60, "ma_windows": [20, 60]},
        "labels": {"horizons": [1, 5, 20], "vol_window": 20, "vol_horizon": 20},
        "walk_forward": {"test_start": "2022-07-01", "test_end": "2022-12-31",
                         "test_length": "6M", "purge": 20, "embargo": 5,
                         "min_train_bars": 200},
        "models": [{"name": "Linear", "layer": "linear"},
                   {"name": "LightGBM", "layer": "lightgbm", "params": {"n_estimators": 60},
                    "space": {"num_leaves": {"int": [3, 15]}}}],
        "search": {"trials_per_fold": 2}, "decision": {"min_trades": 3},
        "fees": {"per_side": 0.0005}, "funding": {"rate_per_8h": 0}})
    frames = {"yahoo:AAPL:1d": feeds.load_embedded("yahoo:AAPL:1d")}
    res = research(spec, frames, tmp_path, SerialExecutor(), log=lambda s: None, placebo=1)
    assert (tmp_path / "placebo" / "flip-001" / "report.json").is_file()
    pl = res["reports"]["yahoo:AAPL:1d"]["placebo"]
    assert pl["_meta"] == {"runs": 1, "kind": "flip"}
    # the flip keeps the volatility process: a volatility baseline scores the same
    trail = pl["Trailing vol|vol_corr"]
    assert trail["null"] == pytest.approx([trail["real"]]) and trail["n"] == 1
    assert {"Linear|ic_5", "LightGBM|net_sharpe"} <= set(pl)
    # every statistic placed has the one run's value in its null; a DSR or PBO appears only
    # where the flipped run has one (a rule that never traded there has neither: no zero)
    assert all(v["n"] == 1 and len(v["null"]) == 1 for k, v in pl.items() if k != "_meta")
    md = (tmp_path / "report.md").read_text()
    assert "Placebo (flip: the spec rerun 1 time on" in md and "Placebo: 1 flip run(s) of" in md
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["reports"]["yahoo:AAPL:1d"]["placebo"]["meta"]["runs"] == 1
    lgbm = res["reports"]["yahoo:AAPL:1d"]["dsr"]["LightGBM"]
    assert lgbm["n_paths"] == 2 and lgbm["searched"]
    assert isinstance(pd.read_parquet(tmp_path / "trials.parquet")["baseline_settings"][0], str)


def test_the_placebo_sentences_say_what_n_runs_allow():
    from s4_strategies.training.research.placebo import markdown

    null = [{"m|ic_5": v, "m|dsr": v} for v in (0.0, 0.1, 0.2)]
    placed = {**place({"m|ic_5": 0.5, "m|dsr": 0.15}, null), "_meta": {"runs": 3}}
    md = markdown(placed)
    assert "the smallest p-value possible is 0.25: no real number can reach 0.05" in md
    assert "Better than every placebo run: m IC 5 bars." in md
    assert "Inside the placebo distribution (some run as good or better): m DSR." in md


def test_the_command_takes_a_placebo(monkeypatch, capsys):
    from s4_strategies.apps import cli
    from s4_strategies.apps import research as app

    seen = {}

    def run_research(*args, **kwargs):  # what the command hands the runner
        seen.update(kwargs)
        raise SystemExit(0)

    monkeypatch.setattr(app, "run_research", run_research)
    with pytest.raises(SystemExit):
        cli.main(["research", "--spec", "s.yaml", "--out", "o", "--placebo", "3",
                  "--placebo-kind", "blocks"])
    assert seen["placebo"] == 3 and seen["placebo_kind"] == "blocks"
    with pytest.raises(SystemExit):
        cli.main(["research", "--spec", "s.yaml", "--out", "o", "--placebo", "0"])
    assert "--placebo" in capsys.readouterr().err
