"""The deflated Sharpe ratio and the probability of backtest overfitting against closed forms
and cases worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from s4_strategies.training.research.overfit import (
    EULER_GAMMA,
    deflated_sharpe,
    expected_max_sharpe,
    moments,
    pbo_cscv,
    probabilistic_sharpe,
    sharpe,
)


def test_expected_max_sharpe_is_the_papers_formula():
    # Bailey & López de Prado (2014), eq. for SR0 with N = 10 trials and V[SR] = 0.04
    z1, z2 = stats.norm.ppf(1 - 1 / 10), stats.norm.ppf(1 - 1 / (10 * math.e))
    want = 0.2 * ((1 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)
    assert expected_max_sharpe(10, 0.04) == pytest.approx(want, rel=1e-12)
    assert want == pytest.approx(0.2 * (0.4227843 * 1.2815516 + 0.5772157 * 1.7894), rel=1e-3)
    assert expected_max_sharpe(1, 0.04) == 0.0  # one trial: nothing was selected
    assert expected_max_sharpe(1000, 0.04) > expected_max_sharpe(10, 0.04)  # more trials
    with pytest.raises(ValueError):
        expected_max_sharpe(0, 0.04)


def test_probabilistic_sharpe_for_normal_returns():
    # SR 0.1 per bar over 101 bars, skew 0, kurtosis 3: z = 0.1·10 / sqrt(1 + 0.5·0.01)
    assert probabilistic_sharpe(0.1, 0.0, 101) == pytest.approx(
        stats.norm.cdf(1.0 / math.sqrt(1.005)), rel=1e-12)
    # negative skew and fat tails widen the estimate's error: PSR falls toward 1/2
    assert probabilistic_sharpe(0.1, 0.0, 101, skew=-1.0, kurtosis=9.0) < \
        probabilistic_sharpe(0.1, 0.0, 101)
    assert probabilistic_sharpe(0.1, 0.1, 101) == pytest.approx(0.5)


def test_deflated_sharpe_of_a_series():
    rng = np.random.default_rng(0)
    r = rng.normal(0.001, 0.01, 2000)
    skew, kurt = moments(r)
    assert skew == pytest.approx(stats.skew(r), rel=1e-9)
    assert kurt == pytest.approx(stats.kurtosis(r, fisher=False), rel=1e-9)
    one = deflated_sharpe(r, 1, 0.001)
    assert one["dsr"] == pytest.approx(one["psr_vs_zero"])  # one trial: DSR = PSR(0)
    sr = sharpe(r)
    sr0 = expected_max_sharpe(100, 0.001)
    z = (sr - sr0) * math.sqrt(len(r) - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    many = deflated_sharpe(r, 100, 0.001)
    assert many["dsr"] == pytest.approx(stats.norm.cdf(z), rel=1e-9)
    assert many["dsr"] < one["dsr"]


def _blocks(means, noise=0.1, per_block=10):
    """A (T, N) matrix whose block b of column n is means[n][b] ± noise (alternating)."""
    wiggle = noise * np.where(np.arange(per_block) % 2, 1.0, -1.0)  # (per_block,)
    cols = [np.concatenate([m + wiggle for m in col]) for col in means]
    return np.stack(cols, axis=1)  # (T, N)


def test_pbo_is_one_when_the_in_sample_winner_always_loses():
    # S = 2: the half where A shines is the half where B wins out of sample, and vice versa
    m = _blocks([[1.0, -1.0], [-1.0, 1.0]])
    res = pbo_cscv(m, n_blocks=2)
    assert res["n_combinations"] == 2
    assert res["pbo"] == 1.0
    # rank 1 of 2 out of sample: ω = 1/3, λ = ln(1/2)
    assert np.allclose(res["logits"], math.log(0.5))


def test_pbo_is_zero_when_one_configuration_dominates():
    m = _blocks([[1.0, 1.2, 0.8, 1.1], [-0.5, -0.4, -0.6, -0.5]])
    res = pbo_cscv(m, n_blocks=4)
    assert res["n_combinations"] == 6 and res["pbo"] == 0.0
    assert np.allclose(res["logits"], math.log(2.0))  # rank 2 of 2: ω = 2/3


def test_pbo_of_a_hand_worked_case():
    """A = (2, 2, -1, -1), B = (-2, -2, 1, 1) per block, same noise. Of the 6 in-sample
    halves, {0,1} picks A (OOS {2,3}: B better) and {2,3} picks B (OOS {0,1}: A better):
    overfit. The 4 mixed halves pick A with mean +0.5 and A keeps +0.5 out of sample: fine.
    PBO = 2/6."""
    m = _blocks([[2.0, 2.0, -1.0, -1.0], [-2.0, -2.0, 1.0, 1.0]])
    res = pbo_cscv(m, n_blocks=4)
    assert res["pbo"] == pytest.approx(2 / 6)
    assert res["p_oos_loss"] == pytest.approx(2 / 6)


def test_pbo_rejects_what_it_cannot_score():
    with pytest.raises(ValueError, match="N >= 2"):
        pbo_cscv(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(np.zeros((100, 3)), n_blocks=5)
    bad = np.zeros((100, 3))
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pbo_cscv(bad, n_blocks=4)
    with pytest.raises(ValueError, match="too few"):
        pbo_cscv(np.zeros((20, 3)), n_blocks=16)


def test_pbo_of_pure_noise_is_one_half_on_average():
    """Skill-less configurations: the in-sample winner's out-of-sample rank is uniform, so
    PBO averages 1/2 (one matrix alone is noisy: its splits share data)."""
    rng = np.random.default_rng(3)
    pbos = [pbo_cscv(rng.normal(0, 0.01, (400, 10)), n_blocks=8)["pbo"] for _ in range(40)]
    assert 0.4 < np.mean(pbos) < 0.6


def test_the_deflated_sharpe_papers_worked_example():
    # Bailey & López de Prado (2014), numerical example: N = 100 trials whose annualised
    # Sharpe ratios have variance 1/2, the best one 2.5 annualised over T = 1250 daily
    # returns with skewness -3 and kurtosis 10: SR0 = 0.1132 per day, DSR = 0.9004
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    assert probabilistic_sharpe(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0) == \
        pytest.approx(0.9004, abs=5e-5)


def test_pbo_in_the_papers_design_finds_a_real_edge():
    """The PBO paper's experiment design: N = 100 strategies, T = 1000 returns, S = 16
    blocks, C(16, 8) = 12,870 partitions. One strategy with a real edge (0.25 per bar) among
    skill-less ones is chosen in sample and stays above the median out of sample: PBO ~ 0."""
    rng = np.random.default_rng(4)
    m = rng.normal(0.0, 1.0, (1000, 100))
    m[:, 17] += 0.25
    res = pbo_cscv(m, n_blocks=16)
    assert res["n_combinations"] == 12_870 and res["pbo"] < 0.02


def test_the_fast_cscv_equals_the_partition_by_partition_reference():
    from s4_strategies.training.research.overfit import pbo_cscv_reference

    rng = np.random.default_rng(5)
    m = rng.normal(0.0005, 0.01, (240, 6))
    m[:, 2] = 0.0  # a rule that never trades: Sharpe 0 in every half
    m[:, 4] += 0.002 * np.sin(np.arange(240) / 15)
    fast, slow = pbo_cscv(m, n_blocks=8), pbo_cscv_reference(m, n_blocks=8)
    assert fast["logits"] == pytest.approx(slow["logits"], abs=1e-9)
    assert fast["pbo"] == slow["pbo"]
