"""The research report: per dataset and model the stitched out-of-sample skill and trading
tables (the comparison's columns), the deflated Sharpe ratio for the number of trials run,
and the probability of backtest overfitting over the grid of model × seed histories.

Selection never reads the test bars: in each fold the hyperparameters with the best
validation objective are kept, and the report's *selected configuration* is the model whose
chosen settings have the best mean validation objective over the folds.

DSR's variance of Sharpe ratios is that of every trial's own test-block per-bar Sharpe ratio
(trials are shorter than the stitched history, so their Sharpe ratios vary more and the
deflation is, if anything, too strict).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...features import make_labels
from .. import skill_report, trading_report
from ..compare import LINEAR, SKILL_COLUMNS, TRADING_COLUMNS, markdown_table
from ..decision import net_returns
from ..funding import funding_per_bar
from .overfit import deflated_sharpe, pbo_cscv
from .scheduler import objective_value
from .spec import OBJECTIVES
from .stitch import IncompleteError, chosen, current_rows, full_length, stitched_runs
from .walkforward import describe

RESEARCH_TRADING_COLUMNS = [*TRADING_COLUMNS, ("DSR", "dsr", "{:.2f}")]


def _blocks(n_bars: int) -> int:
    """CSCV blocks: 16, or fewer (even) so that each block holds at least 20 bars."""
    s = min(16, n_bars // 20)
    return s - s % 2


def _baseline_rows(lin: dict, y, test, har, h) -> dict:
    fc = {"Majority class": {"class": lin["majority"]},
          "Class prior": {"probs": lin["prior_probs"]},
          LINEAR: {k: lin[k] for k in ("probs", "ret_1", "ret_5", "log_vol")},
          "Trailing vol": {"log_vol": lin["trailing_log_vol"]}, "HAR": {"log_vol": har}}
    return {name: skill_report.score(name, [f], y, test, har, h) for name, f in fc.items()}


def dataset_report(spec, dataset: str, df: pd.DataFrame, folds, store, rows: dict) -> dict:
    """Every table of one dataset from the store's rows; models with unfinished folds are
    listed under ``incomplete``."""
    from analyzers.metrics import infer_periods_per_year

    lspec = spec.label_spec
    mine = current_rows(rows, spec, dataset, folds)
    n, test = len(df), slice(folds[0].test[0], folds[-1].test[1])
    y = skill_report.targets(make_labels(df, lspec), lspec)
    close = df["close"].to_numpy()
    ppy = infer_periods_per_year(df.index)
    funding = funding_per_bar(df.index, spec.funding_rate)
    stitched, incomplete, per_fold, val_score = {}, {}, {}, {}
    for m in spec.models:
        try:
            picked = chosen(mine, spec, m, folds)
        except IncompleteError as exc:
            incomplete[m.name] = str(exc)
            continue
        stitched[m.name] = stitched_runs(store, picked, folds)
        per_fold[m.name] = [{"fold": k, "params": rs[0]["params"],
                             spec.objective: rs[0][spec.objective],
                             "band": [rs[0]["band_enter"], rs[0]["band_exit"]],
                             "test_ic_5": float(np.nanmean([r["test_ic_5"] for r in rs])),
                             "test_net_sharpe": float(np.nanmean([r["test_net_sharpe"]
                                                                  for r in rs])),
                             "checkpoints": [r.get("checkpoint") for r in rs]}
                            for k, rs in picked.items()]
        val_score[m.name] = float(np.mean([objective_value(rs[0], spec.objective)
                                           for rs in picked.values()]))
    har = None  # no DM column without the linear trials (they carry HAR)
    skill_rows = {}
    lin_name = next((m.name for m in spec.models if not m.network and m.name in stitched), None)
    if lin_name is not None:
        lin = full_length(stitched[lin_name][0], n, lspec.n_classes)
        har = lin["har_log_vol"]
        skill_rows.update(_baseline_rows(lin, y, test, har, lspec.vol_horizon))
        skill_rows.pop(LINEAR)
    trading, returns = [], {}
    bh = trading_report.buy_and_hold(df, test, spec.fee, funding, ppy)
    trading.append({"model": "Buy & hold", "rule": "always long", "seeds": 1, **bh})
    for name, runs in stitched.items():
        fcs = [full_length(r, n, lspec.n_classes) for r in runs]
        skill_rows[name] = skill_report.score(name, fcs, y, test, har, lspec.vol_horizon)
        results = []
        for i, r in enumerate(runs):
            pos = r["position"].to_numpy()
            returns[(name, i)] = net_returns(close[test], pos, spec.fee, funding[test])[0]
            rep = trading_report.position_report(df.index[test], close[test], pos, spec.fee,
                                                 funding[test], ppy)
            results.append({"band": {**rep, "rule": None}})
        row = trading_report.summarise(name, results, "band")
        trading.append({**row, "rule": "cost band per fold"})
    n_trials = len(mine)
    sharpes = np.array([r["test_sharpe_bar"] for r in mine], dtype=np.float64)
    var_sr = float(np.nanvar(sharpes, ddof=1)) if np.isfinite(sharpes).sum() > 1 else 0.0
    dsr = {}
    for name in stitched:
        mean_net = np.mean([returns[(name, i)] for i in range(len(stitched[name]))], axis=0)
        dsr[name] = deflated_sharpe(mean_net, max(n_trials, 1), var_sr)
    for row in trading:
        if row["model"] in dsr:
            row["dsr"] = dsr[row["model"]]["dsr"]
    pbo = None
    cols = sorted(returns)
    blocks = _blocks(test.stop - test.start)
    if len(cols) >= 2 and blocks >= 2:
        res = pbo_cscv(np.stack([returns[c] for c in cols], axis=1), n_blocks=blocks)
        pbo = {k: v for k, v in res.items() if k not in ("logits", "is_oos_sharpe")}
        pbo["configurations"] = [f"{m} seed {spec.seeds[i]}" for m, i in cols]
    sign = 1 if OBJECTIVES[spec.objective] == "minimize" else -1
    selected = min(val_score, key=lambda k: sign * val_score[k]) if val_score else None
    sel_returns = None
    if selected is not None:
        sel_returns = pd.Series(np.mean([returns[(selected, i)] for i in
                                         range(len(stitched[selected]))], axis=0),
                                index=df.index[test], name=selected)
    return {"dataset": dataset, "folds": describe(folds, df.index), "n_trials": n_trials,
            "var_sharpe_per_bar": var_sr, "periods_per_year": ppy,
            "test_period": [str(df.index[test.start]), str(df.index[test.stop - 1])],
            "skill": list(skill_rows.values()), "trading": trading, "dsr": dsr, "pbo": pbo,
            "chosen": per_fold, "validation_objective": val_score, "selected": selected,
            "selected_dsr": dsr.get(selected), "incomplete": incomplete,
            "_selected_returns": sel_returns, "_stitched": stitched, "_returns": returns}


def markdown(report: dict, objective: str) -> str:
    """One dataset's tables in markdown."""
    lines = [f"#### {report['dataset']}: {report['n_trials']} trials, "
             f"{len(report['folds'])} folds, test {report['test_period'][0][:10]} .. "
             f"{report['test_period'][1][:10]}", "",
             "| fold | train | validation | test |", "|---|---|---|---|"]
    for f in report["folds"]:
        lines.append(f"| {f['fold']} | " + " | ".join(
            f"{f[k][0][:10]} .. {f[k][1][:10]}" for k in ("train", "val", "test")) + " |")
    lines += ["", "Skill (stitched out-of-sample):", "", markdown_table(report["skill"],
                                                                          SKILL_COLUMNS), "",
              "Trading (stitched out-of-sample, fees and funding; DSR for "
              f"{report['n_trials']} trials):", "",
              markdown_table(report["trading"], RESEARCH_TRADING_COLUMNS), ""]
    if report["chosen"]:
        lines += ["When: each fold's test block alone (IC 5 bars / net Sharpe, mean over seeds; "
                  "the setting chosen on that fold's validation):", "",
                  "| model | " + " | ".join(f"fold {f['fold']} ({f['test'][0][:7]})"
                                           for f in report["folds"]) + " |",
                  "|---|" + "---|" * len(report["folds"])]
        for name, folds in report["chosen"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{f['test_ic_5']:+.3f} / {f['test_net_sharpe']:+.2f}" for f in folds) + " |")
        lines.append("")
    pbo = report["pbo"]
    if pbo is not None:
        lines.append(f"Probability of backtest overfitting (CSCV, {pbo['n_blocks']} blocks, "
                     f"{pbo['n_combinations']} splits, {pbo['n_configurations']} model × seed "
                     f"histories): **{pbo['pbo']:.2f}**; P(in-sample best loses "
                     f"out-of-sample) {pbo['p_oos_loss']:.2f}.")
    sel = report["selected"]
    if sel is not None:
        d = report["selected_dsr"]
        lines.append(f"Selected on validation ({objective}): **{sel}**; stitched net Sharpe "
                     f"per bar {d['sharpe']:+.4f} against SR₀ {d['sr0']:.4f} → DSR "
                     f"**{d['dsr']:.2f}** (PSR vs 0: {d['psr_vs_zero']:.2f}).")
    for why in report["incomplete"].values():
        lines.append(f"Not reported, incomplete: {why}.")
    return "\n".join(lines)
