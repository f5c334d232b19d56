"""The cost-aware decision rule: band + hysteresis against a slow reference, the choice of the
band on validation data, and the cost report against hand-computed cases."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s4_strategies.training.decision import (
    DEFAULT_GRID,
    BandRule,
    band_from_cost,
    carry_positions,
    cost_report,
    count_trades,
    select_rule,
)
from s4_strategies.training.evaluation import backtest_positions, trade_returns

FEE = 0.00055


def reference(scores, enter, exit, long_only=False):
    """The rule as specified, one state at a time (slow and obvious)."""
    short = 0 if long_only else -1
    pos, out = 0, []
    for s in scores:
        if math.isnan(s):
            new = 0
        elif pos == 0:
            new = 1 if s > enter else (short if s < -enter else 0)
        elif pos == 1:
            if s < -enter:
                new = short
            elif s > exit:
                new = 1
            else:
                new = 0
        else:  # short
            if s > enter:
                new = 1
            elif s < -exit:
                new = -1
            else:
                new = 0
        out.append(new)
        pos = new
    return np.array(out, dtype=float)


def stepped(rule, scores):
    pos, out = 0, []
    for s in scores:
        pos = rule.step(s, pos)
        out.append(pos)
    return np.array(out, dtype=float)


# -- BandRule --------------------------------------------------------------------------------
scores_st = st.lists(
    st.one_of(st.floats(-0.02, 0.02), st.just(float("nan")), st.sampled_from([0.0, 0.001])),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(scores_st, st.sampled_from([0.0, 0.001, 0.002, 0.005]),
       st.sampled_from([-0.01, -0.003, -0.001, 0.0, 0.001, 0.002, 0.005]), st.booleans())
def test_positions_and_step_equal_the_reference(scores, enter, exit, long_only):
    exit = min(exit, enter)
    rule = BandRule(enter, exit, long_only)
    want = reference(scores, enter, exit, long_only)
    np.testing.assert_array_equal(rule.positions(np.array(scores, dtype=float)), want)
    np.testing.assert_array_equal(stepped(rule, scores), want)


def test_band_and_hysteresis_by_hand():
    rule = BandRule(enter=0.002, exit=-0.001)
    s = [np.nan, 0.001, 0.003, 0.0, -0.0005, -0.001, 0.0025, -0.0021, 0.0009, 0.0011, np.nan]
    #     warm   band   long   hold  hold     exit    long    reverse  hold(s) flat    warm
    want = [0, 0, 1, 1, 1, 0, 1, -1, -1, 0, 0]
    np.testing.assert_array_equal(rule.positions(s), want)
    np.testing.assert_array_equal(stepped(rule, s), want)
    assert BandRule(0.002, 0.0, long_only=True).positions([-0.01, 0.003, -0.01]).tolist() == [
        0, 1, 0]


def test_nan_means_flat_even_when_in_a_position():
    rule = BandRule(0.001, 0.0)
    assert rule.step(float("nan"), 1) == 0 and rule.step(None, -1) == 0
    assert rule.step(0.0005, 1) == 1 and rule.step(0.0005, -1) == 0


def test_rule_is_validated_and_frozen():
    with pytest.raises(ValueError, match="exit must be <= enter"):
        BandRule(0.001, 0.002)
    with pytest.raises(ValueError, match="enter must be >= 0"):
        BandRule(-0.001, -0.002)
    with pytest.raises(ValueError, match="enter must be >= 0"):
        BandRule(float("nan"), 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        BandRule(0.001, 0.0).enter = 0.0
    never = BandRule(math.inf, math.inf)
    assert never.never_trades and not never.positions([1.0, -1.0, 0.0]).any()


def test_band_from_cost_scales_by_the_round_trip():
    rule = band_from_cost(FEE, 2.0, -0.5)
    assert rule.enter == pytest.approx(4 * FEE) and rule.exit == pytest.approx(-FEE)
    assert len(DEFAULT_GRID) == 18 and all(x <= e for e, x in DEFAULT_GRID)
    with pytest.raises(ValueError):
        band_from_cost(-1e-4, 1.0, 0.0)


# -- select_rule -----------------------------------------------------------------------------
def market(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    logret = rng.normal(0.0, 0.004, n)
    close = 100 * np.exp(np.cumsum(logret))
    nxt = np.append(np.diff(np.log(close)), 0.0)  # the next bar's log return
    score = nxt + rng.normal(0.0, 0.004, n)  # informative but noisy
    return close, score


def test_select_rule_picks_the_best_eligible_cell_by_net_sharpe():
    close, score = market()
    rule, table = select_rule(score, close, FEE, min_trades=20)
    eligible = [c for c in table["cells"] if c["eligible"]]
    assert table["eligible"] == len(eligible) > 0 and len(table["cells"]) == 18
    best = max(c["sharpe"] for c in eligible)
    assert table["chosen"]["sharpe"] == best
    assert (rule.enter, rule.exit) == (table["chosen"]["enter"], table["chosen"]["exit"])
    # a cell's Sharpe is the backtest's, recomputed independently
    cell = table["cells"][4]
    pos = band_from_cost(FEE, cell["k_enter"], cell["k_exit"]).positions(score)
    r = backtest_positions(close, pos, FEE)["returns"]
    assert cell["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(24 * 365))
    assert cell["trades"] == len(trade_returns(pos, r))


def test_select_rule_without_an_eligible_cell_never_trades():
    close, score = market(300)
    rule, table = select_rule(score, close, FEE, min_trades=10_000)
    assert rule.never_trades and table["chosen"] is None and table["eligible"] == 0
    assert "never trades" in table["note"]
    assert not rule.positions(score).any()


def test_select_rule_charges_funding():
    close, score = market(2000, seed=1)
    heavy = np.full(len(close), 0.01)  # longs pay 1 % a bar: only shorting can pay
    rule, table = select_rule(score, close, FEE, min_trades=5, funding=heavy)
    _, plain = select_rule(score, close, FEE, min_trades=5)
    assert table["funding"] and not plain["funding"]
    assert [c["sharpe"] for c in table["cells"]] != [c["sharpe"] for c in plain["cells"]]
    with pytest.raises(ValueError, match="funding"):
        select_rule(score, close, FEE, funding=heavy[:-1])
    with pytest.raises(ValueError, match="k_exit must be <= k_enter"):
        select_rule(score, close, FEE, grid=[(1.0, 2.0)])


def test_the_position_held_at_the_end_is_closed_and_one_never_held_trades_nothing():
    close, fee = [100.0, 110.0, 121.0], 0.01
    out = backtest_positions(close, [0, 1, 0], fee)  # long over the last bar, closed at its end
    assert out["returns"][2] == pytest.approx(0.1 - 2 * fee)  # the entry and the exit
    assert out["turnover"] == 2 and out["fees"] == pytest.approx(2 * fee)
    late = backtest_positions(close, [0, 0, 1], fee)  # decided at the last close: never held
    assert late["returns"].tolist() == [0.0, 0.0, 0.0] and late["turnover"] == 0
    held = backtest_positions(close, [1, 1, 1], fee)  # in at the first close, out at the last
    assert held["returns"][1:] == pytest.approx([0.1 - fee, 0.1 - fee])
    assert cost_report(close, [0, 1, 0], fee, 4)["turnover"] == 2


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([-1.0, 1.0]))
def test_carried_positions_equal_stepping_the_band_from_the_carried_state(seed, start):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0, 0.002, 40)
    scores[rng.integers(0, 40, 3)] = np.nan
    rule = band_from_cost(FEE, 1.0, float(rng.choice([-0.5, 0.0, 0.5])))
    pos, want = start, []
    for s in scores:
        pos = rule.step(s, pos)
        want.append(pos)
    assert carry_positions(rule, scores, start).tolist() == want
    assert carry_positions(rule, scores, 0.0).tolist() == rule.positions(scores).tolist()


# -- cost_report -----------------------------------------------------------------------------
def test_cost_report_by_hand():
    close, pos = [100.0, 110.0, 121.0, 121.0], [1, 1, 0, 0]
    rep = cost_report(close, pos, fee=0.01, periods_per_year=4)
    # gross returns [0, .1, .1, 0]; the fee is paid on entry (1) and exit (1): turnover 2
    assert rep["gross_mean"] == pytest.approx(0.05) and rep["turnover"] == 2
    assert rep["fees_paid"] == pytest.approx(0.02) and rep["net_mean"] == pytest.approx(0.045)
    assert rep["break_even_fee"] == pytest.approx(0.2 / 2)  # (sum gross - funding) / turnover
    assert rep["trades"] == 1 and rep["avg_holding_bars"] == 2 and rep["funding_paid"] == 0
    assert rep["turnover_per_year"] == pytest.approx(2 / 4 * 4)
    funded = cost_report(close, pos, 0.01, 4, funding=[0.01, 0.01, 0.0, 0.0])
    assert funded["funding_paid"] == pytest.approx(0.02)
    assert funded["break_even_fee"] == pytest.approx((0.2 - 0.02) / 2)
    assert funded["gross_sharpe"] == rep["gross_sharpe"] > funded["net_sharpe"]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000))
def test_net_mean_is_zero_at_the_break_even_fee(seed):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    pos = rng.choice([-1.0, 0.0, 1.0], 60)
    funding = rng.normal(0, 1e-4, 60)
    rep = cost_report(close, pos, FEE, 8760, funding=funding)
    if rep["turnover"] == 0:
        assert rep["break_even_fee"] is None
        return
    be = rep["break_even_fee"]
    at_be = cost_report(close, pos, be, 8760, funding=funding)
    assert at_be["net_mean"] == pytest.approx(0.0, abs=1e-12)
    net = backtest_positions(close, pos, FEE)["returns"]
    net[1:] -= pos[:-1] * funding[:-1]
    assert rep["net_mean"] == pytest.approx(net.mean())


def test_cost_report_without_trades_and_with_a_flip():
    rep = cost_report([1.0, 2.0, 3.0], [0, 0, 0], FEE, 8760)
    assert rep["break_even_fee"] is None and rep["avg_holding_bars"] is None
    assert rep["turnover"] == 0 and rep["trades"] == 0
    flip = cost_report([100.0, 101.0, 99.0, 98.0, 98.0], [1, -1, -1, 0, 0], FEE, 8760)
    assert flip["trades"] == 2 == count_trades([1, -1, -1, 0, 0])
    assert flip["turnover"] == 1 + 2 + 1 and flip["avg_holding_bars"] == 1.5
