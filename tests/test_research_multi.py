"""A multi-asset (shared-encoder) model in a research spec: it validates, one trial trains
one model on every dataset's fold and writes each dataset's rows, the report lists it in
each dataset's table, train/validation/test never overlap on any asset, a resumed run does
not train a finished shared trial again, and the placebo reruns it on permuted bars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_research_run import TINY  # tests/ is on sys.path

import feeds
from s4_strategies.model.multi import load_multi, panel
from s4_strategies.training import skill_report, verdicts
from s4_strategies.training.research import SpecError, parse_spec
from s4_strategies.training.research.engine import SerialExecutor
from s4_strategies.training.research.multi_trial import group_name, shared_rows
from s4_strategies.training.research.run import plan_folds, research

PAIR = ["yahoo:AAPL:1d", "yahoo:MSFT:1d"]
LR = {"lr": {"log_uniform": [1e-3, 1e-2]}}
SPEC = {**TINY, "datasets": PAIR,
        "models": [{"name": "S4D", "layer": "s4d", "space": LR},
                   {"name": "Shared S4D", "layer": "s4d", "multi_asset": True, "space": LR}]}
# per fold: Shared S4D 2 settings + 1 seed (one trial for both datasets), S4D the same per
# dataset; two folds
N_TRIALS = 2 * (3 + 2 * 3)
GAP = TINY["walk_forward"]["purge"] + TINY["walk_forward"]["embargo"]


@pytest.fixture(scope="module", autouse=True)
def _few_replicates():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(verdicts, "REPS", 100)
        mp.setattr(skill_report, "N_BOOT", 100)
        yield


@pytest.fixture(scope="module")
def frames():
    return {ds: feeds.load_embedded(ds) for ds in PAIR}


def _mtimes(out) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.parquet")}


@pytest.fixture(scope="module")
def shared_run(frames, tmp_path_factory):
    """Cut off after four trials (the shared model's fold 0 and a first trial of fold 1),
    resumed to the end, then run once more."""
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("shared")
    spec = parse_spec(SPEC)
    first = research(spec, frames, out, SerialExecutor(), log=lambda s: None, max_trials=4)
    before = _mtimes(out)
    second = research(spec, frames, out, SerialExecutor(), log=lambda s: None)
    third = research(spec, frames, out, SerialExecutor(), log=lambda s: None)
    return out, spec, first, before, second, third


def test_a_spec_names_a_shared_model():
    spec = parse_spec(SPEC)
    shared = spec.model("Shared S4D")
    assert shared.multi_asset and shared.layer == "s4d" and not spec.model("S4D").multi_asset
    other = parse_spec({**SPEC, "datasets": [*PAIR, "yahoo:SPY:1d"]})
    # another list of datasets trains another shared model; the per-asset model is the same
    assert other.fingerprint(other.model("Shared S4D")) != spec.fingerprint(shared)
    assert other.fingerprint(other.model("S4D")) == spec.fingerprint(spec.model("S4D"))


@pytest.mark.parametrize("change, words", [
    ({"datasets": ["yahoo:AAPL:1d"]}, "several datasets; the spec lists 1"),
    ({"walk_forward": {**TINY["walk_forward"], "test_length": 120}},
     "calendar spans (walk_forward.test_length like '3M'), got 120 bars"),
    ({"models": [{"name": "Shared S4D", "layer": "gru", "multi_asset": True}]},
     "shared encoder is one of"),
    ({"models": [{"name": "Shared S4D", "layer": "linear", "multi_asset": True}]},
     "shared encoder is one of"),
])
def test_a_shared_model_that_cannot_run_is_one_clear_error(change, words):
    with pytest.raises(SpecError) as err:
        parse_spec({**SPEC, **change})
    text = str(err.value)
    assert text.startswith("models.Shared S4D: ") and words in text and "\n" not in text
    assert "more problem" not in text


def test_folds_that_cannot_be_aligned_fail_before_any_trial(frames):
    spec = parse_spec(SPEC)
    short = {**frames, PAIR[1]: frames[PAIR[1]].loc[:"2022-12-31"]}  # no bars in fold 1
    with pytest.raises(ValueError, match="folds of yahoo:MSFT:1d cannot be aligned"):
        plan_folds(spec, short)
    hourly = feeds.load_embedded("bybit:BTCUSDT:60")
    with pytest.raises(ValueError, match="one bar spacing"):
        plan_folds(parse_spec({**SPEC, "datasets": [PAIR[0], "bybit:BTCUSDT:60"]}),
                   {PAIR[0]: frames[PAIR[0]], "bybit:BTCUSDT:60": hourly})


def test_a_later_asset_joins_and_no_period_touches_another(frames):
    """MSFT listed 18 months later: its validation is shorter (val_fraction of fewer bars),
    so training stops at the earliest end of training; each asset keeps its own
    validation rows and at least purge + embargo of its own bars between periods."""
    late = {PAIR[0]: frames[PAIR[0]], PAIR[1]: frames[PAIR[1]].loc["2020-07-01":]}
    spec = parse_spec(SPEC)
    folds = plan_folds(spec, late)
    index, _ = panel(late)
    for k in range(2):
        fk = {ds: folds[ds][k] for ds in PAIR}
        train, val = shared_rows(late, fk, index)
        first_val = min(index[val[:, a]][0] for a in range(2))
        assert index[train.any(axis=1)][-1] < first_val  # no window reaches a validation bar
        for a, ds in enumerate(PAIR):
            own, f = late[ds].index, fk[ds]
            assert list(index[val[:, a]]) == list(own[f.val[0]: f.val[1]])
            used = own.get_indexer(index[train[:, a]])
            assert used[0] == f.train[0] and used[-1] < f.train[1]
            assert f.val[0] - used[-1] - 1 >= GAP and f.test[0] - f.val[1] >= GAP
        assert index[train[:, 1]][0] == late[PAIR[1]].index[0]  # the later asset joins
        ends = [late[ds].index[fk[ds].train[1] - 1] for ds in PAIR]
        assert ends[0] != ends[1]  # the two training periods do differ


def test_one_trial_writes_every_dataset_and_the_report_lists_it(shared_run, frames):
    out, spec, _, _, second, _ = shared_run
    assert second["counts"]["complete"] and second["counts"]["total"] == N_TRIALS
    rows = pd.read_parquet(out / "trials.parquet")
    assert set(rows["status"]) == {"ok"}
    groups = rows[rows["dataset"] == group_name(PAIR)]
    assert len(groups) == 2 * 3
    for ds in PAIR:
        mine = rows[rows["dataset"] == ds]
        assert (mine["model"] == "Shared S4D").sum() == 6 and (mine["model"] == "S4D").sum() == 6
        shared = mine[mine["model"] == "Shared S4D"]
        assert set(shared["group"]) == set(groups["trial_id"])  # one row per group trial each
        rep = second["reports"][ds]
        assert {r["model"] for r in rep["skill"]} == {"S4D", "Shared S4D"}
        assert {r["model"] for r in rep["trading"]} >= {"S4D", "Shared S4D"}
        assert "Shared S4D" in rep["dsr"] and "Shared S4D" in rep["pbo"]["models"]
        assert "Shared S4D" in json.dumps(rep["verdicts"], default=str)
        # one encoder vs one model per asset: a paired difference of each metric, Holm-adjusted
        paired = [p for p in rep["verdicts"]["paired"]
                  if (p["model"], p["against"]) == ("Shared S4D", "S4D")]
        assert {p["metric"] for p in paired} == set(verdicts.PAIRED)
        assert all(p["p_holm"] >= p["p_value"] for p in paired if np.isfinite(p["p_value"]))
    # the group's validation objective is the mean over the assets; each fold's chosen
    # setting is the one with the best mean, the same on both datasets
    for tid, g in groups.set_index("trial_id").iterrows():
        parts = rows[rows["group"] == tid]
        assert len(parts) == 2
        assert g["val_log_loss"] == pytest.approx(parts["val_log_loss"].mean())
        assert (parts["val_objective_assets"] == g["val_log_loss"]).all()
    for k in range(2):
        search = groups[(groups["fold"] == k) & (groups["phase"] == "search")]
        best = search.sort_values("val_log_loss").iloc[0]["params"]
        for ds in PAIR:
            assert second["reports"][ds]["chosen"]["Shared S4D"][k]["params"] == best
    md = (out / "report.md").read_text()
    for ds in PAIR:
        section = md.split(f"#### {ds}:")[1].split("####")[0]
        assert "| Shared S4D |" in section and "| S4D |" in section
        assert "| Shared S4D − S4D |" in section


def test_the_shared_trial_never_overlaps_train_val_test_on_any_asset(shared_run, frames):
    out, spec, *_ = shared_run
    folds = plan_folds(spec, frames)
    rows = pd.read_parquet(out / "trials.parquet")
    shared = rows[(rows["model"] == "Shared S4D") & (rows["dataset"] == PAIR[0])]
    for _, r in shared.iterrows():
        meta = load_multi(out / r["checkpoint"]).meta
        fold = int(r["fold"])
        val_starts = []
        for ds in PAIR:
            idx = frames[ds].index
            f, p = folds[ds][fold], meta["periods"][ds]
            (t0, t1), (v0, v1), (s0, s1) = (
                [idx.get_loc(pd.Timestamp(d)) for d in p[k]] for k in ("train", "val", "test"))
            assert t1 < f.train[1] and v0 - t1 - 1 >= GAP and s0 - v1 - 1 >= GAP
            assert (v0, v1 + 1, s0, s1 + 1) == (*f.val, *f.test)  # the fold's own periods
            val_starts.append(pd.Timestamp(p["val"][0]))
        assert all(pd.Timestamp(meta["periods"][ds]["train"][1]) < min(val_starts)
                   for ds in PAIR)
    for ds in PAIR:  # its predictions: the fold's test bars, nothing else
        for _, r in rows[(rows["model"] == "Shared S4D") & (rows["dataset"] == ds)].iterrows():
            preds = pd.read_parquet(out / "predictions" / f"{r['trial_id']}.parquet")
            f = folds[ds][int(r["fold"])]
            assert preds["bar"].tolist() == list(range(*f.test))


def test_a_resumed_run_does_not_train_a_finished_shared_trial_again(shared_run):
    out, _, first, before, second, third = shared_run
    assert first["counts"]["ran"] == 4 and not first["counts"]["complete"]
    assert second["counts"]["already_done"] == 4
    assert second["counts"]["ran"] == N_TRIALS - 4
    rows = pd.read_parquet(out / "trials.parquet")
    early = rows[rows["trial_id"].isin([n.removesuffix(".parquet") for n in before])]
    assert len(early) == 4 * 3  # four group rows and their eight dataset rows
    after = _mtimes(out)
    assert all(after[name] == t for name, t in before.items())  # none written again
    assert third["counts"]["ran"] == 0 and third["counts"]["complete"]


def test_the_placebo_reruns_the_shared_model_on_every_permuted_asset(frames, tmp_path):
    import torch

    torch.set_num_threads(1)
    spec = parse_spec({**SPEC, "seeds": 1, "walk_forward": {**TINY["walk_forward"],
                                                            "test_end": "2022-12-31"},
                       "models": [{"name": "Shared S4D", "layer": "s4d",
                                   "multi_asset": True}]})
    res = research(spec, frames, tmp_path, SerialExecutor(), log=lambda s: None, placebo=1)
    for ds in PAIR:
        assert res["reports"][ds]["placebo"]["_meta"]["runs"] == 1
        assert res["reports"][ds]["skill"][0]["model"] == "Shared S4D"
    placebo = pd.read_parquet(tmp_path / "placebo" / "flip-001" / "trials.parquet")
    assert sorted(placebo["dataset"]) == sorted([*PAIR, group_name(PAIR)])
    real = pd.read_parquet(tmp_path / "trials.parquet").set_index("trial_id")
    for _, r in placebo[placebo["dataset"] != group_name(PAIR)].iterrows():
        # the same trial on other bars: its validation differs
        assert not np.isclose(r["val_log_loss"], real.loc[r["trial_id"], "val_log_loss"])
