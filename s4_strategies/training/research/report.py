"""The research report: per dataset and model the stitched out-of-sample skill and trading
tables (the comparison's columns), which models can be told apart (``training.verdicts``:
Model Confidence Sets, SPA/StepM against the linear baseline, paired two-level bootstraps
with Holm's adjustment), the deflated Sharpe ratio and the probability of backtest
overfitting over the configurations the pipeline chose among (``selection``).

Selection never reads the test bars: in each fold the hyperparameters with the best
validation objective are kept, and the report's *selected configuration* is the model whose
chosen settings have the best mean validation objective over the folds.

DSR (``selection``, which writes out the formula): per model, ``N`` = its candidate paths
(the ``K`` settings searched per fold, each laid end to end over the folds), ``V`` = the
variance of their per-bar Sharpe ratios; a model without a search has ``N = 1`` and
``SR₀ = 0`` (DSR = PSR against zero). The selected configuration: ``N`` = every model's
candidate paths, ``V`` over all of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...features import make_labels
from .. import skill_report, trading_report, verdicts
from ..compare import SKILL_COLUMNS, TRADING_COLUMNS, markdown_table
from ..decision import net_returns
from ..funding import funding_per_bar
from . import selection
from .scheduler import objective_value
from .spec import OBJECTIVES
from .stitch import IncompleteError, chosen, current_rows, full_length, stitched_runs
from .walkforward import describe

RESEARCH_TRADING_COLUMNS = TRADING_COLUMNS


def _baselines(lin: dict) -> dict[str, list[dict]]:
    """The featureless baselines carried in the linear trials' predictions."""
    out = {"Majority class": [{"class": lin["majority"]}],
           "Class prior": [{"probs": lin["prior_probs"]}],
           "Trailing vol": [{"log_vol": lin["trailing_log_vol"]}]}
    if "ewma_log_vol" in lin:
        out["EWMA"] = [{"log_vol": lin["ewma_log_vol"]}]
    out["HAR"] = [{"log_vol": lin["har_log_vol"]}]
    return out


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
    candidates, searched = {}, {}
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
        paths = selection.candidate_rows(mine, spec, m, folds)
        candidates[m.name] = selection.candidate_returns(store, paths, folds, close[test],
                                                         spec.fee, funding[test])
        searched[m.name] = bool(m.space)
    forecasts: dict[str, list[dict]] = {}
    lin_name = next((m.name for m in spec.models if m.layer == "linear" and m.name in stitched),
                    None)
    if lin_name is not None:
        lin = full_length(stitched[lin_name][0], n, lspec.n_classes)
        forecasts.update(_baselines(lin))
    for name, runs in stitched.items():
        forecasts[name] = [full_length(r, n, lspec.n_classes) for r in runs]
    skill_rows = [skill_report.score(name, fcs, y, test) for name, fcs in forecasts.items()]
    trading, returns = [], {}
    bh = trading_report.buy_and_hold(df, test, spec.fee, funding, ppy)
    bh_returns = bh.pop("net_returns")
    trading.append({"model": "Buy & hold", "rule": "always long", "seeds": 1, **bh})
    for name, runs in stitched.items():
        results = []
        for i, r in enumerate(runs):
            pos = r["position"].to_numpy()
            returns[(name, i)] = net_returns(close[test], pos, spec.fee, funding[test])[0]
            rep = trading_report.position_report(df.index[test], close[test], pos, spec.fee,
                                                 funding[test], ppy)
            rep.pop("net_returns")
            results.append({"band": {**rep, "rule": None}})
        trading.append({**trading_report.summarise(name, results, "band"),
                        "rule": "cost band per fold"})
    sign = 1 if OBJECTIVES[spec.objective] == "minimize" else -1
    selected = min(val_score, key=lambda k: sign * val_score[k]) if val_score else None
    # the search seed's path of each model's chosen settings (seeds[0] ran the search)
    dsr = selection.deflation({name: returns[(name, 0)] for name in stitched}, candidates,
                              searched, selected)
    seed_paths = {name: np.stack([returns[(name, i)] for i in range(len(runs))])
                  for name, runs in stitched.items()}
    verdict = None
    if len(forecasts) >= 2:
        nets = [m.name for m in spec.models if m.network and m.name in stitched]
        # one encoder vs one model per asset: each shared model against the per-asset
        # model(s) of its layer, in the same Holm family
        pairs = [(m.name, o.name) for m in spec.models if m.multi_asset
                 for o in spec.models if o.layer == m.layer and not o.multi_asset]
        verdict = verdicts.verdicts(forecasts, y, test, lspec, benchmark=lin_name,
                                    networks=nets, against=[lin_name] if lin_name else [],
                                    returns={**seed_paths, "Buy & hold": bh_returns[None, :]},
                                    pairs=pairs)
    sel_returns = None
    if selected is not None:
        sel_returns = pd.Series(seed_paths[selected].mean(axis=0), index=df.index[test],
                                name=selected)
    return {"dataset": dataset, "folds": describe(folds, df.index), "n_trials": len(mine),
            "periods_per_year": ppy,
            "test_period": [str(df.index[test.start]), str(df.index[test.stop - 1])],
            "skill": skill_rows, "trading": trading, "verdicts": verdict,
            "dsr": dsr["models"], "selected_dsr": dsr["selected"],
            "pbo": selection.pbo(candidates, searched),
            "chosen": per_fold, "validation_objective": val_score, "selected": selected,
            "incomplete": incomplete, "_selected_returns": sel_returns,
            "_stitched": stitched, "_returns": returns, "_candidates": candidates}


def _num(x, fmt: str = "{:.2f}") -> str:
    return fmt.format(x) if x is not None and np.isfinite(x) else "–"


def _dsr_table(report: dict) -> list[str]:
    lines = ["| model | candidate paths N | V (per-bar SR) | SR₀ | SR (per bar) | DSR | "
             "PSR vs 0 |", "|---|---|---|---|---|---|---|"]
    rows = list(report["dsr"].items())
    if report["selected_dsr"] is not None:
        rows.append((f"selected: {report['selected_dsr']['model']}", report["selected_dsr"]))
    for name, d in rows:
        lines.append(f"| {name} | {d['n_paths'] if d.get('searched', True) else '1 (no search)'}"
                     f" | {d['var_sharpe']:.2e} | {d['sr0']:.4f} | {d['sharpe']:+.4f} | "
                     f"{_num(d['dsr'])} | {_num(d['psr_vs_zero'])} |"
                     + (f" ({d['note']})" if d.get("note") else ""))
    return lines


def _pbo_lines(pbo: dict) -> list[str]:
    out = []
    for name, p in [*pbo["models"].items(), ("all models' paths together", pbo["all"])]:
        if p is None:
            out.append(f"- {name}: too few paths or bars for CSCV.")
            continue
        if p["pbo"] is None:
            out.append(f"- {name}: {p['note']} ({p['n_configurations']} paths): nothing was "
                       "chosen, no PBO.")
            continue
        out.append(f"- {name}: PBO **{p['pbo']:.2f}** over {p['n_configurations']} candidate "
                   f"paths, CSCV with {p['n_blocks']} blocks ({p['n_combinations']} "
                   f"partitions); the in-sample best's out-of-sample Sharpe is negative in "
                   f"{p['p_oos_loss']:.0%} of them.")
    return out


def markdown(report: dict, objective: str) -> str:
    """One dataset's tables in markdown."""
    lines = [f"#### {report['dataset']}: {report['n_trials']} trials, "
             f"{len(report['folds'])} folds, test {report['test_period'][0][:10]} .. "
             f"{report['test_period'][1][:10]}", "",
             "| fold | train | validation | test |", "|---|---|---|---|"]
    for f in report["folds"]:
        lines.append(f"| {f['fold']} | " + " | ".join(
            f"{f[k][0][:10]} .. {f[k][1][:10]}" for k in ("train", "val", "test")) + " |")
    lines += ["", "Skill (stitched out-of-sample; IC intervals: two-level bootstrap over seeds "
              "and blocks of test bars):", "", markdown_table(report["skill"], SKILL_COLUMNS),
              ""]
    v = report.get("verdicts")
    if v:
        lines += [verdicts.markdown(v), ""]
        lines += [f"- {s}" for s in verdicts.sentences(v)] + [""]
    lines += ["Trading (stitched out-of-sample, fees and funding; each fold's band takes over "
              "the position the previous fold's band held):", "",
              markdown_table(report["trading"], RESEARCH_TRADING_COLUMNS), ""]
    if report["dsr"]:
        lines += ["Deflated Sharpe ratio (Bailey & López de Prado, 2014) of each model's chosen "
                  "settings (stitched path, search seed; SR per bar over its T bars, γ₃ "
                  "skewness, γ₄ kurtosis): DSR = Φ((SR − SR₀) √(T − 1) / √(1 − γ₃ SR + "
                  "(γ₄ − 1)/4 SR²)) with SR₀ = √V ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), "
                  "N its candidate paths (each fold's k-th proposal laid end to end) and V the "
                  "variance of their per-bar Sharpe ratios; no search: N = 1, SR₀ = 0, DSR = "
                  "PSR vs 0. The selected configuration counts every model's paths:", ""]
        lines += _dsr_table(report) + [""]
        strong = [n for n, d in report["dsr"].items() if np.isfinite(d["dsr"]) and
                  d["dsr"] >= 0.95]
        lines += [("DSR at least 0.95 (the strategy's Sharpe survives its search at 5 %): "
                   + ", ".join(strong) + ".") if strong else
                  "No model's DSR reaches 0.95: no evidence that a chosen strategy's Sharpe "
                  "ratio survives the search that chose it.", ""]
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
    lines += ["Probability of backtest overfitting of choosing among the candidate paths:"]
    lines += _pbo_lines(report["pbo"]) + [""]
    sel = report["selected"]
    if sel is not None and report["selected_dsr"] is not None:
        d = report["selected_dsr"]
        lines.append(f"Selected on validation ({objective}): **{sel}**; its stitched net Sharpe "
                     f"per bar {d['sharpe']:+.4f} against SR₀ {d['sr0']:.4f} (N = "
                     f"{d['n_paths']} paths) → DSR **{_num(d['dsr'])}** (PSR vs 0: "
                     f"{_num(d['psr_vs_zero'])}).")
    for why in report["incomplete"].values():
        lines.append(f"Not reported, incomplete: {why}.")
    pl = report.get("placebo")
    if pl:
        from .placebo import markdown as placebo_markdown

        lines += ["", placebo_markdown(pl)]
    return "\n".join(lines)
