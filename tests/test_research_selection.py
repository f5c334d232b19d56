"""What the research pipeline chose among (research.selection): DSR with the candidate paths
as the alternatives, PBO over them, and stitched positions that carry the band's state."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from s4_strategies.training.research import selection
from s4_strategies.training.research.overfit import (
    deflated_sharpe,
    expected_max_sharpe,
    sharpe,
)
from s4_strategies.training.research.stitch import stitch_path


def _paths(rng, k, t=1000, edge=0.0):
    return rng.normal(edge, 0.01, (k, t))  # (K, T) per-bar returns


def test_dsr_counts_the_candidate_paths_and_nothing_else():
    rng = np.random.default_rng(0)
    cand = {"S4D": _paths(rng, 4), "GRU": _paths(rng, 3), "Linear": _paths(rng, 1)}
    chosen = {name: p[0] for name, p in cand.items()}  # the chosen settings' paths
    searched = {"S4D": True, "GRU": True, "Linear": False}
    out = selection.deflation(chosen, cand, searched, chosen="GRU")
    s4d = out["models"]["S4D"]
    v = np.var([sharpe(p) for p in cand["S4D"]], ddof=1)
    assert s4d["n_trials"] == 4 and s4d["var_sharpe"] == pytest.approx(v)
    assert s4d["sr0"] == pytest.approx(expected_max_sharpe(4, v))
    lin = out["models"]["Linear"]  # no search: not deflated by anyone's trials
    assert lin["n_trials"] == 1 and lin["sr0"] == 0.0 and lin["dsr"] == lin["psr_vs_zero"]
    sel = out["selected"]  # across models: every model's paths
    every = np.concatenate(list(cand.values()))
    assert sel["model"] == "GRU" and sel["n_paths"] == 8
    assert sel["dsr"] == pytest.approx(deflated_sharpe(
        chosen["GRU"], 8, np.var([sharpe(p) for p in every], ddof=1))["dsr"])
    # the hurdle is what 8 skill-less paths of 1000 bars reach, not a grid of 344 half-years
    assert sel["sr0"] < 3.0 / math.sqrt(1000)


def test_pbo_runs_per_model_and_over_all_paths():
    rng = np.random.default_rng(1)
    cand = {"S4D": _paths(rng, 4, 400), "Linear": _paths(rng, 1, 400)}
    out = selection.pbo(cand, {"S4D": True, "Linear": False})
    assert set(out["models"]) == {"S4D"}  # a model without a search chose nothing
    s4d = out["models"]["S4D"]
    assert s4d["n_configurations"] == 4 and s4d["n_blocks"] == 16
    assert s4d["n_combinations"] == 12_870
    assert out["all"]["n_configurations"] == 5 and out["all"]["configurations"][-1] == "Linear #0"
    assert selection.cscv_blocks(250) == 12 and selection.cscv_blocks(30) == 0


class _Store:
    def __init__(self, frames):
        self.frames = frames

    def predictions(self, trial_id):
        return self.frames[trial_id]


def test_the_next_fold_takes_over_the_position_instead_of_starting_flat():
    # fold 0 ends long; fold 1's band (enter 0.01, exit 0.0) sees scores inside its band:
    # a rule that starts flat stays out, one that takes over the long position holds it
    f0 = pd.DataFrame({"bar": [10, 11, 12], "move": [0.0, 0.02, 0.005], "position": 0.0})
    f1 = pd.DataFrame({"bar": [13, 14, 15], "move": [0.005, 0.004, -0.001], "position": 0.0})
    store = _Store({"a": f0, "b": f1})
    rows = [{"trial_id": "a", "band_enter": 0.01, "band_exit": 0.0},
            {"trial_id": "b", "band_enter": 0.01, "band_exit": 0.0}]
    path = stitch_path(store, rows, 10, 16)
    assert path["position"].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert path["bar"].tolist() == list(range(10, 16))
    assert f1["position"].tolist() == [0.0, 0.0, 0.0]  # the stored predictions untouched


def test_identical_candidate_paths_chose_nothing():
    # every setting's band never traded: ties everywhere, and CSCV's rank of the in-sample
    # best would read as "at the median" in every partition (PBO 1) for a choice never made
    out = selection.pbo({"LightGBM": np.zeros((2, 300))}, {"LightGBM": True})
    assert out["models"]["LightGBM"]["pbo"] is None
    assert out["all"]["note"] == "the candidate paths are identical"


def test_a_rule_that_never_traded_has_no_dsr():
    rng = np.random.default_rng(2)
    cand = {"LightGBM": np.zeros((2, 300)), "S4D": _paths(rng, 2, 300)}
    out = selection.deflation({"LightGBM": np.zeros(300), "S4D": cand["S4D"][0]}, cand,
                              {"LightGBM": True, "S4D": True}, chosen="LightGBM")
    assert np.isnan(out["models"]["LightGBM"]["dsr"]) and out["models"]["LightGBM"]["note"]
    assert np.isnan(out["selected"]["dsr"]) and np.isfinite(out["models"]["S4D"]["dsr"])
