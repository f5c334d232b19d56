"""The trading table: a cost-aware rule on each forecast, chosen on validation only.

For every model and seed the score is the predicted log return over the signal horizon
(5 bars). :func:`decision.select_rule` picks the no-trade band and its hysteresis on the
validation bars (net Sharpe after the taker fee and funding); the chosen rule then trades
the test bars, starting flat. Argmax of the signal head every bar (the old rule) is kept
as a reference row. Funding: a documented constant (``funding.DEFAULT_FUNDING_RATE`` per
8 h) charged on the position held at each mark, for the models and buy-and-hold alike.
"""

from __future__ import annotations

import numpy as np

from ..fees import BYBIT_TAKER as TAKER_FEE
from .decision import cost_report, net_returns, select_rule
from .evaluation import evaluate_positions, positions_from_signal
from .funding import DEFAULT_FUNDING_RATE, funding_per_bar
from .skill import seed_summary

SUMMARY_KEYS = ("net_sharpe", "gross_sharpe", "max_drawdown", "annual_return",
                "turnover_per_year", "trades", "break_even_fee", "funding_paid")


def position_report(index, close, pos, fee, funding, ppy, seed=0) -> dict:
    """The trading table's columns for holding ``pos`` over the bars ``index``, and the
    per-bar ``net_returns`` (the verdicts' trading loss; not a table column)."""
    costs = cost_report(close, pos, fee, ppy, funding=funding)
    ev = evaluate_positions(index, close, pos, ppy, fee=fee, funding=funding, seed=seed,
                            n_boot=300)
    return {**costs, "max_drawdown": ev["max_drawdown"], "annual_return": ev["annual_return"],
            "sharpe_ci": ev["sharpe_ci"],
            "net_returns": net_returns(close, pos, fee, funding)[0]}


def trade_forecast(score: np.ndarray, signal: np.ndarray, df, val: slice, test: slice,
                   fee: float, funding: np.ndarray, ppy: float, n_classes: int,
                   seed: int = 0) -> dict:
    """The cost-aware rule (chosen on ``val``) and the argmax reference on ``test``.
    score (n,) predicted signal-horizon log return; signal (n,) argmax class values."""
    close = df["close"].to_numpy()
    rule, table = select_rule(score[val], close[val], fee, funding=funding[val],
                              periods_per_year=ppy)
    index = df.index[test]
    pos = rule.positions(score[test])
    band = position_report(index, close[test], pos, fee, funding[test], ppy, seed)
    band["rule"] = {"enter": rule.enter, "exit": rule.exit, "chosen": table.get("chosen"),
                    "note": table.get("note")}
    ref = positions_from_signal(signal[test], n_classes)
    argmax = position_report(index, close[test], ref, fee, funding[test], ppy, seed)
    return {"band": band, "argmax": argmax}


def buy_and_hold(df, test: slice, fee: float, funding: np.ndarray, ppy: float) -> dict:
    close = df["close"].to_numpy()[test]
    return position_report(df.index[test], close, np.ones(len(close)), fee, funding[test], ppy)


def summarise(name: str, runs: list[dict], key: str) -> dict:
    """Mean and sd over seeds of the ``key`` ("band" or "argmax") results."""
    row = {"model": name, "seeds": len(runs)}
    for k in SUMMARY_KEYS:
        vals = [r[key][k] for r in runs if r[key].get(k) is not None]
        s = seed_summary(vals) if vals else {"mean": None, "sd": None}
        row[k], row[f"{k}_sd"] = s["mean"], s["sd"]
    row["per_seed"] = [{k: r[key].get(k) for k in SUMMARY_KEYS} for r in runs]
    if key == "band":
        row["rules"] = [r["band"]["rule"] for r in runs]
    return row


def band_on_validation(predictor, df, split, fee: float = TAKER_FEE,
                       funding_rate: float = DEFAULT_FUNDING_RATE) -> dict:
    """The cost-aware band for ``predictor``, chosen on the validation bars of ``split``
    (the model run from the first bar up to the end of validation, nothing later). The
    checkpoint stores it, and ``S4DirectionalStrategy`` trades it by default."""
    from analyzers.metrics import infer_periods_per_year

    end = split.val[1]
    f = predictor.forecasts(df.iloc[:end])
    move = f["returns"][:, predictor.decoder.move_index]  # (end,)
    val = slice(*split.val)
    funding = funding_per_bar(df.index[:end], funding_rate)
    ppy = infer_periods_per_year(df.index)
    rule, table = select_rule(move[val], df["close"].to_numpy()[val], fee, funding=funding[val],
                              periods_per_year=ppy)
    return {"score": "pred_move", "horizon": predictor.label_spec.signal_horizon,
            "enter": rule.enter, "exit": rule.exit, "fee": fee,
            "funding_rate_per_8h": funding_rate, "chosen": table.get("chosen"),
            "note": table.get("note")}
