"""The verdicts under the tables (training.verdicts) on forecasts whose truth is planted: the
confidence set keeps what cannot be told apart and drops what is worse, SPA/StepM find a
network that beats the benchmark, and the sentences say only that."""

from __future__ import annotations

import numpy as np
import pytest

from s4_strategies.features import LabelSpec
from s4_strategies.training import verdicts
from s4_strategies.training.skill_report import bar_log_loss, bar_losses, score


def _world(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    f1, f5 = rng.normal(size=n), rng.normal(size=n)
    y = {"fwd_1": f1, "fwd_5": f5, "signal": (f5 > 0.4).astype(float) + (f5 > -0.4),
         "log_vol": rng.normal(size=n)}

    def model(skill, seeds):
        out = []
        for _ in range(seeds):
            r5 = skill * f5 + rng.normal(size=n)
            p = np.stack([np.full(n, 0.3), np.full(n, 0.4), np.full(n, 0.3)], axis=1)
            out.append({"ret_1": skill * f1 + rng.normal(size=n), "ret_5": r5, "probs": p,
                        "log_vol": y["log_vol"] + rng.normal(0, 1 - skill, n)})
        return out

    fc = {"Linear": model(0.0, 1), "Good net": model(0.5, 3), "Twin net": model(0.5, 3),
          "Noise net": model(0.0, 3)}
    return fc, y


def test_planted_skill_is_found_and_only_that_is_said():
    fc, y = _world()
    test = slice(200, 1500)
    v = verdicts.verdicts(fc, y, test, LabelSpec(), benchmark="Linear",
                          networks=["Good net", "Twin net", "Noise net"], against=["Linear"],
                          reps=300)
    ic5 = v["mcs"]["ic_5"]
    assert set(ic5["included"]) == {"Good net", "Twin net"}  # indistinguishable, both best
    assert set(ic5["excluded"]) == {"Linear", "Noise net"}
    assert set(v["spa"]["ic_5"]["superior"]) == {"Good net", "Twin net"}
    assert v["spa"]["ic_5"]["spa_p"] < 0.05
    assert v["mcs"]["log_loss"]["excluded"] == []  # the same probabilities everywhere
    paired = {(p["model"], p["metric"]): p for p in v["paired"]}
    assert len(v["paired"]) == 9 and paired[("Good net", "ic_5")]["p_holm"] < 0.01
    assert paired[("Noise net", "ic_5")]["ci"][0] < 0 < paired[("Noise net", "ic_5")]["ci"][1]
    holm = sorted(p["p_holm"] for p in v["paired"])
    assert holm == sorted(holm) and all(p["p_holm"] >= p["p_value"] for p in v["paired"])
    text = " ".join(verdicts.sentences(v))
    assert "IC 5 bars (−IC terms): Good net, Twin net are in the 90% confidence set" in text
    assert "log-loss: the 90% confidence set holds all 4 models" in text
    assert "StepM finds Good net, Twin net better than Linear" in text
    md = verdicts.markdown(v)
    assert "| IC 5 bars (−IC terms) | Good net, Twin net |" in md and "Holm" in md


def test_bar_losses_average_to_the_table():
    fc, y = _world(n=400, seed=1)
    test = slice(50, 400)
    losses = bar_losses(fc["Good net"], y, test)
    row = score("Good net", fc["Good net"], y, test)
    assert -np.nanmean(losses["ic_5"], axis=1).mean() == pytest.approx(row["ic_5"])
    assert np.nanmean(losses["log_loss"]) == pytest.approx(row["log_loss"])
    assert np.nanmean(losses["vol"], axis=1).mean() == pytest.approx(row["vol_mse"])
    p = np.array([[0.2, 0.8], [0.5, 0.5], [np.nan, 0.5]])
    assert bar_log_loss(p, np.array([1.0, 0.0, 1.0]))[:2] == pytest.approx(
        [-np.log(0.8), -np.log(0.5)])
    assert np.isnan(bar_log_loss(p, np.array([1.0, np.nan, 1.0]))[1:]).all()
