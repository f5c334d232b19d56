"""A research run in this process: a tiny grid trains, stores, resumes, survives a failing
trial, stitches its folds, and never lets a trial see a bar after its test block."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import feeds
from s4_strategies.training import skill_report, verdicts
from s4_strategies.training.research import parse_spec
from s4_strategies.training.research.engine import SerialExecutor, run_trials
from s4_strategies.training.research.run import plan_folds, research
from s4_strategies.training.research.schema import OBJECTIVES
from s4_strategies.training.research.store import ResultStore
from s4_strategies.training.research.trial import Task, run_trial

DAILY = {"features": {"return_windows": [1, 5, 20], "vol_windows": [20, 60],
                      "volume_window": 60, "ma_windows": [20, 60]},
         "labels": {"horizons": [1, 5, 20], "vol_window": 20, "vol_horizon": 20}}
TINY = {
    "name": "tiny", "datasets": ["yahoo:AAPL:1d"], **DAILY,
    "walk_forward": {"test_start": "2022-07-01", "test_end": "2023-06-30", "test_length": "6M",
                     "purge": 20, "embargo": 5, "min_train_bars": 200},
    "models": [{"name": "S4D", "layer": "s4d", "space": {"lr": {"log_uniform": [1e-3, 1e-2]}}},
               {"name": "Linear", "layer": "linear"}],
    "seeds": 2, "search": {"trials_per_fold": 2},
    "train": {"d_model": 8, "d_state": 8, "n_layers": 1, "epochs": 1, "steps_per_epoch": 2,
              "seq_len": 64, "burn_in": 16, "batch_size": 4},
    "decision": {"min_trades": 3}, "fees": {"per_side": 0.0005}, "funding": {"rate_per_8h": 0},
}
N_TRIALS = 2 * (2 + 1 + 1)  # folds × (two S4D settings, the chosen one's second seed, linear)


@pytest.fixture(scope="module", autouse=True)
def _few_replicates():
    """The reports' bootstraps with 100 replicates: these tests check the mechanics."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verdicts, "REPS", 100)
        mp.setattr(skill_report, "N_BOOT", 100)
        yield


@pytest.fixture(scope="module")
def frames():
    return {"yahoo:AAPL:1d": feeds.load_embedded("yahoo:AAPL:1d")}


@pytest.fixture(scope="module")
def tiny_run(frames, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("research")
    lines = []
    res = research(parse_spec(TINY), frames, out, SerialExecutor(), log=lines.append)
    return out, res, lines


def test_every_trial_runs_and_is_stored(tiny_run):
    out, res, lines = tiny_run
    c = res["counts"]
    assert (c["total"], c["ran"], c["failed"], c["complete"]) == (N_TRIALS, N_TRIALS, 0, True)
    rows = pd.read_parquet(out / "trials.parquet")
    assert len(rows) == N_TRIALS and set(rows["status"]) == {"ok"}
    assert {"val_log_loss", "test_ic_5", "test_net_sharpe", "seconds", "train_seconds",
            "host"} <= set(rows.columns)
    assert set(OBJECTIVES) <= set(rows.columns)  # every objective a spec may name is a column
    nets = rows[rows["model"] == "S4D"]
    assert all((out / p).is_file() for p in nets["checkpoint"])
    # the search phase proposed two settings per fold; the best was trained again, seed 1
    for _, fold in nets.groupby("fold"):
        search = fold[fold["phase"] == "search"]
        assert len(search) == 2 and search["params"].nunique() == 2
        best = search.sort_values("val_log_loss").iloc[0]
        assert fold[fold["phase"] == "seed"]["params"].tolist() == [best["params"]]
    assert any(line.startswith(f"[{N_TRIALS}/{N_TRIALS}]") and "ETA" in line for line in lines)


def test_the_report_stitches_the_folds(tiny_run, frames):
    out, res, _ = tiny_run
    rep = res["reports"]["yahoo:AAPL:1d"]
    df = frames["yahoo:AAPL:1d"]
    assert not rep["incomplete"]
    first = df.index.searchsorted(pd.Timestamp("2022-07-01", tz="UTC"))
    last = df.index.searchsorted(pd.Timestamp("2023-07-01", tz="UTC"))
    for runs in rep["_stitched"].values():
        for r in runs:
            assert r["bar"].tolist() == list(range(first, last))  # no bar twice, no gap
    stitched = pd.read_parquet(out / "stitched" / "yahoo_AAPL_1d" / "S4D.parquet")
    assert len(stitched) == last - first and {"position_0", "position_1", "equity"} <= set(
        stitched.columns)
    skill = {r["model"]: r for r in rep["skill"]}
    assert {"Majority class", "Class prior", "HAR", "EWMA", "Trailing vol", "S4D",
            "Linear"} <= set(skill)
    assert skill["S4D"]["seeds"] == 2 and np.isfinite(skill["S4D"]["ic_5_ci"]).all()
    v = rep["verdicts"]  # MCS per loss, SPA of the networks against the linear baseline
    assert {"ic_1", "ic_5", "log_loss", "vol", "trading"} <= set(v["mcs"])
    assert "Buy & hold" in v["mcs"]["trading"]["models"] and v["spa"]["ic_5"]["models"] == ["S4D"]
    assert {(p["model"], p["against"]) for p in v["paired"]} == {("S4D", "Linear")}
    assert rep["selected"] in ("S4D", "Linear")
    # DSR: S4D against its 2 candidate paths, the linear model (no search) against none
    assert rep["dsr"]["S4D"]["n_paths"] == 2 and 0.0 <= rep["dsr"]["S4D"]["dsr"] <= 1.0
    lin = rep["dsr"]["Linear"]
    assert lin["n_trials"] == 1 and lin["sr0"] == 0.0 and lin["dsr"] == lin["psr_vs_zero"]
    assert rep["selected_dsr"]["n_paths"] == 3
    assert rep["pbo"]["all"]["n_configurations"] == 3 and 0.0 <= rep["pbo"]["all"]["pbo"] <= 1
    assert rep["pbo"]["models"]["S4D"]["n_configurations"] == 2
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["total"] == N_TRIALS
    md = (out / "report.md").read_text()
    assert "Probability of backtest overfitting" in md and "DSR" in md
    assert "partitions" in md and "indistinguishable from the best" in md


def test_a_rerun_resumes_without_running_anything(tiny_run, frames):
    out, res, _ = tiny_run
    before = (out / "report.md").read_text()
    again = research(parse_spec(TINY), frames, out, SerialExecutor(), log=lambda s: None)
    assert again["counts"]["ran"] == 0 and again["counts"]["already_done"] == N_TRIALS
    assert (out / "report.md").read_text() == before  # the header sums the invocations
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["ran"] for r in runs] == [N_TRIALS, 0]


def test_a_partial_run_resumes_where_it_stopped(frames, tmp_path):
    spec = parse_spec(TINY)
    folds = plan_folds(spec, frames)
    store = ResultStore(tmp_path)
    first = run_trials(spec, frames, folds, store, SerialExecutor(), log=lambda s: None,
                       max_trials=3)
    assert (first["ran"], first["complete"]) == (3, False)
    rest = run_trials(spec, frames, folds, store, SerialExecutor(), log=lambda s: None)
    assert (rest["already_done"], rest["ran"], rest["complete"]) == (3, N_TRIALS - 3, True)


def test_a_failing_trial_is_recorded_and_the_run_goes_on(frames, tmp_path, monkeypatch):
    from s4_strategies.training.research import trial

    def out_of_memory(task, *args):  # what the machine, not the spec, can do to a trial
        raise MemoryError(f"no_such_option: {task.model.name} ran out of memory")

    monkeypatch.setattr(trial, "_forecast_network", out_of_memory)
    broken = {**TINY, "models": [{"name": "Broken", "layer": "s4d"},
                                 {"name": "Linear", "layer": "linear"}]}
    lines = []
    res = research(parse_spec(broken), frames, tmp_path, SerialExecutor(), log=lines.append)
    rows = pd.read_parquet(tmp_path / "trials.parquet")
    failed = rows[rows["status"] == "failed"]
    assert set(failed["model"]) == {"Broken"} and len(failed) == 2  # one per fold, no seeds
    assert failed["error"].str.contains("no_such_option").all()
    assert (rows[rows["model"] == "Linear"]["status"] == "ok").all()
    assert "Broken" in res["reports"]["yahoo:AAPL:1d"]["incomplete"]
    assert any("failed" in line for line in lines)
    # a rerun tries the failed trials again (and they fail again, recorded again)
    again = research(parse_spec(broken), frames, tmp_path, SerialExecutor(), log=lambda s: None)
    assert again["counts"]["ran"] == 2 and again["counts"]["failed"] == 2


def test_a_trial_never_sees_a_bar_after_its_test_block(frames):
    """Replace every bar after the fold's test block with nonsense: the trial's test
    predictions, positions and scores do not move."""
    import torch

    torch.set_num_threads(1)
    spec = parse_spec(TINY)
    df = frames["yahoo:AAPL:1d"]
    fold = plan_folds(spec, frames)["yahoo:AAPL:1d"][0]
    poisoned = df.copy()
    after = poisoned.index[fold.test[1]:]
    poisoned.loc[after, ["open", "high", "low", "close"]] *= 3.0
    poisoned.loc[after, "volume"] = 1.0
    for model, params in ((spec.models[0], {"lr": 3e-3}), (spec.models[1], {})):
        task = Task("yahoo:AAPL:1d", fold, model, params, 0, "search", spec.fingerprint(model))
        a, b = run_trial(task, spec, df), run_trial(task, spec, poisoned)
        assert a["row"]["status"] == "ok" == b["row"]["status"], a["row"]["error"]
        pd.testing.assert_frame_equal(a["predictions"], b["predictions"])
        assert a["row"]["val_log_loss"] == b["row"]["val_log_loss"]


def test_the_scripts_put_the_report_where_readers_find_it(tiny_run, tmp_path, monkeypatch):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts"))
    import research_readme

    out = tiny_run[0]
    import page_block

    # research:KEY lives on its own results page
    assert page_block.page_for("research:tiny", root=tmp_path) == (
        tmp_path / "docs" / "results" / "research_tiny.md")
    target = tmp_path / "research_tiny.md"
    target.write_text("intro\n<!-- research:tiny:begin -->\nOLD BLOCK\n"
                      "<!-- research:tiny:end -->\n")
    research_readme.write_block("tiny", str(out), target)
    text = target.read_text()
    assert "OLD BLOCK" not in text and "### Research: tiny" in text and text.startswith("intro")
    page = research_readme.write_page("docs/results/x.md", [str(out)], root=tmp_path)
    text = page.read_text()
    assert text.startswith("# Research: the quick studies") and "\n## Research: tiny" in text
    assert f"`python scripts/research_readme.py --page docs/results/x.md {out}`" in text
    assert "research_readme" in sys.modules
