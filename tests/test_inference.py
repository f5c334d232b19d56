"""Model-comparison inference (s4_strategies.training.inference) against closed forms and
simulations whose truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s4_strategies.training import inference, skill


def test_ic_losses_average_to_minus_the_spearman_ic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=500), rng.normal(size=500)
    y += 0.3 * x
    x[7] = np.nan
    ell = inference.ic_losses(x, y)
    assert np.isnan(ell[7])
    assert np.nanmean(ell) == pytest.approx(-skill.spearman_ic(x, y), abs=1e-12)


def test_holm_step_down_by_hand():
    assert inference.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = inference.holm([0.2, np.nan, 0.01])
    assert out[0] == pytest.approx(0.2) and np.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_block_length_grows_with_dependence_and_respects_the_label_overlap():
    rng = np.random.default_rng(1)
    iid = rng.normal(size=1000)
    ar = np.zeros(1000)
    for t in range(1, 1000):
        ar[t] = 0.9 * ar[t - 1] + rng.normal()
    assert inference.block_length(iid, overlap=5) >= 10  # 2 × a 5-bar label overlap
    assert inference.block_length(ar) > 3 * inference.block_length(iid)
    assert inference.block_length(ar) <= 100  # a tenth of the sample


def test_identical_models_differ_by_nothing():
    rng = np.random.default_rng(2)
    y = rng.normal(size=300)
    a = rng.normal(size=(3, 300))
    out = inference.paired_bootstrap("ic", a, a.copy(), y, reps=200, block=5)
    assert out["diff"] == 0.0 and out["ci"][0] < 0 < out["ci"][1] and out["p_value"] > 0.5
    one = inference.paired_bootstrap("ic", a[0], a[0].copy(), y, reps=50, block=5)
    assert one["ci"] == [0.0, 0.0] and one["p_value"] == 1.0  # one seed each: nothing varies


def test_the_fast_ic_path_agrees_with_the_general_one():
    rng = np.random.default_rng(7)
    y = rng.normal(size=200)
    a, b = 0.3 * y + rng.normal(size=(2, 200)), rng.normal(size=(3, 200))
    fast = inference.paired_bootstrap("ic", a, b, y, reps=100, block=4, seed=3)
    slow = inference.paired_bootstrap(skill.spearman_ic, a, b, y, reps=100, block=4, seed=3)
    assert fast["diff"] == pytest.approx(slow["diff"], abs=1e-12)
    assert fast["ci"] == pytest.approx(slow["ci"], abs=0.03)  # ties: ranks of the sample


def test_a_real_edge_is_found_and_a_null_is_not_too_often():
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    good = 0.5 * y + rng.normal(size=(4, 400))  # IC ~0.4 on every seed
    noise = rng.normal(size=(4, 400))
    out = inference.paired_bootstrap("ic", good, noise, y, reps=300, seed=1)
    assert out["diff"] > 0.3 and out["ci"][0] > 0 and out["p_value"] < 0.01
    hits = 0
    for k in range(20):  # two skill-less models: the 10 % test rejects about 10 % of the time
        r = np.random.default_rng(100 + k)
        yk = r.normal(size=300)
        p = inference.paired_bootstrap("ic", r.normal(size=(3, 300)),
                                       r.normal(size=(3, 300)), yk, reps=150, seed=k,
                                       block=3)["p_value"]
        hits += p < 0.10
    assert hits <= 6  # binomial(20, 0.1): P(>= 7) < 0.3 %


def test_test_sample_noise_is_counted_not_only_seed_noise():
    # five near-identical seeds of a model that got lucky on a short test period: a t test
    # over seeds against the baseline's one number finds "significance"; the two-level
    # bootstrap, which also redraws the test bars, does not
    rng = np.random.default_rng(4)
    y, base = rng.normal(size=120), rng.normal(size=120)
    while True:  # a skill-less forecast whose sample IC happens to be about +0.2
        z = rng.normal(size=120)
        if 0.18 < skill.spearman_ic(z, y) - skill.spearman_ic(base, y) < 0.24:
            break
    lucky = z + 0.01 * rng.normal(size=(5, 120))
    per_seed = [skill.spearman_ic(s, y) for s in lucky]
    t = skill.paired_difference(per_seed, skill.spearman_ic(base, y))
    assert t["p_value"] < 1e-6  # the old design: "highly significant"
    boot = inference.paired_bootstrap("ic", lucky, base, y, reps=500, seed=0)
    assert boot["p_value"] > 0.05 and boot["ci"][0] < 0 < boot["ci"][1]  # no evidence


def test_confidence_set_keeps_the_indistinguishable_and_drops_the_worse():
    rng = np.random.default_rng(5)
    n = 500
    best = rng.normal(1.0, 1.0, n)
    twin = best + rng.normal(0.0, 0.05, n)  # the same skill
    worse = best + 0.5 + rng.normal(0.0, 0.5, n)
    losses = pd.DataFrame({"best": best, "twin": twin, "worse": worse})
    out = inference.confidence_set(losses, reps=300)
    assert set(out["included"]) == {"best", "twin"} and out["excluded"] == ["worse"]
    assert out["pvalues"]["worse"] < 0.1


def test_superior_to_a_benchmark():
    rng = np.random.default_rng(6)
    n = 500
    bench = rng.normal(1.0, 1.0, n)
    models = pd.DataFrame({"better": bench - 0.4 + rng.normal(0, 0.3, n),
                           "same": bench + rng.normal(0, 0.3, n)})
    out = inference.superior_to(bench, models, reps=300)
    assert out["superior"] == ["better"] and out["spa_p"] < 0.05
    none = inference.superior_to(bench, models[["same"]], reps=300)
    assert none["superior"] == [] and none["spa_p"] > 0.05


def test_one_sample_and_per_bar_loss_forms():
    rng = np.random.default_rng(8)
    y = rng.normal(size=300)
    good = 0.4 * y + rng.normal(size=(3, 300))
    one = inference.paired_bootstrap("ic", good, None, y, reps=200, seed=2)
    want = np.mean([skill.spearman_ic(g, y) for g in good])
    assert one["diff"] == pytest.approx(want) and one["seeds"] == [3, 0]
    assert 0 < one["ci"][0] < want < one["ci"][1] and one["p_value"] < 0.01
    # per-bar losses: the score is their mean; a constant shift of 0.1 is found exactly
    la = rng.exponential(size=300)
    lb = la + 0.1
    out = inference.paired_bootstrap("mean", la, lb, np.zeros(300), reps=200, seed=1)
    assert out["diff"] == pytest.approx(-0.1) and out["ci"] == pytest.approx([-0.1, -0.1])
    noise = inference.paired_bootstrap("mean", la, rng.exponential(size=300),
                                       np.zeros(300), reps=200, seed=1, overlap=5)
    assert noise["block"] >= 10 and noise["ci"][0] < 0 < noise["ci"][1]


def test_models_with_identical_losses_enter_the_set_as_one():
    # two rules that never trade lose exactly 0 at every bar: the bootstrap cannot rank a
    # difference that is zero everywhere (arch divides by its variance); they share a verdict
    rng = np.random.default_rng(9)
    n = 400
    flat = np.zeros(n)
    losses = pd.DataFrame({"flat A": flat, "flat B": flat.copy(),
                           "worse": 0.3 + rng.normal(0, 0.5, n)})
    out = inference.confidence_set(losses, reps=200)
    assert out["included"] == ["flat A", "flat B"] and out["excluded"] == ["worse"]
    assert out["pvalues"]["flat A"] == out["pvalues"]["flat B"] == 1.0
    same = inference.superior_to(flat, losses[["flat A"]], reps=100)
    assert same["spa_p"] == 1.0 and same["superior"] == []
