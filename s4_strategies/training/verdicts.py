"""What the tables allow one to say: which models are indistinguishable from the best, whether
any network beats the linear baseline, and the paired differences, each over seeds and test
bars together (``inference``), with the sentences that follow from those numbers.

- **Model Confidence Set** (Hansen, Lunde & Nason, 2011) at 90 % per loss: per-bar losses
  (mean over a model's seeds at each bar; their means are the table's −IC, log-loss, vol MSE
  and −mean net return) into ``inference.confidence_set``. The set holds the models that
  are statistically indistinguishable from the best; the others are excluded with their MCS
  p-values. It replaces the old Diebold–Mariano column (whose statistics and p-values were
  averaged over seeds): one joint procedure over the whole table instead of one test per
  pair.
- **SPA / StepM** (Hansen, 2005; Romano & Wolf, 2005): do the networks beat the benchmark
  (the linear baseline)? The SPA p-value of "no network is better" and StepM's networks
  that are, family-wise error 5 %.
- **Paired differences**: the two-level bootstrap (seeds × stationary blocks of test bars)
  of ΔIC 1, ΔIC 5 and Δlog-loss of each network against each reference
  (``inference.paired_bootstrap``; blocks at least twice the label's overlap: 1 and 5 bars
  for the ICs, the signal horizon for the log-loss), with Holm-adjusted p-values over the
  whole family.

The bars scored are the test bars where every model in a comparison has a loss.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import inference
from .skill_report import IC_HORIZONS, bar_losses

SIZE = 0.10  # the MCS's level: a 90 % set
STEPM_SIZE = 0.05
REPS = 1000
LOSSES = {"ic_1": "IC 1 bar (−IC terms)", "ic_5": "IC 5 bars (−IC terms)",
          "log_loss": "log-loss", "vol": "log-vol squared error",
          "trading": "net return per bar (negated)"}
PAIRED = ("ic_1", "ic_5", "log_loss")


def overlaps(lspec) -> dict[str, int]:
    """Bars over which each loss's targets overlap (the blocks' floor is twice that)."""
    return {**{f"ic_{h}": h for h in IC_HORIZONS}, "log_loss": int(lspec.signal_horizon),
            "vol": int(lspec.vol_horizon), "trading": 1}


def _frames(forecasts: dict[str, list[dict]], y: dict, test: slice,
            returns: dict[str, np.ndarray] | None) -> dict[str, pd.DataFrame]:
    """Per loss, a bars × models frame of seed-mean per-bar losses."""
    cols: dict[str, dict[str, np.ndarray]] = {}
    for name, fcs in forecasts.items():
        for key, m in bar_losses(fcs, y, test).items():
            cols.setdefault(key, {})[name] = m.mean(axis=0)  # (T,)
    if returns:
        cols["trading"] = {name: -np.atleast_2d(r).mean(axis=0) for name, r in returns.items()}
    return {k: pd.DataFrame(v) for k, v in cols.items() if len(v) >= 2}


def verdicts(forecasts: dict[str, list[dict]], y: dict, test: slice, lspec,
             benchmark: str | None = None, networks=(), against=(),
             returns: dict[str, np.ndarray] | None = None, reps: int | None = None,
             seed: int = 0, pairs=()) -> dict:
    """Every verdict of one comparison. ``forecasts``: model -> one forecast dict per seed
    (full-length arrays, ``test`` the scored rows); ``benchmark``: the SPA/StepM reference;
    ``networks``: the models tested against it; ``against``: the references of the paired
    differences; ``pairs``: further (model, reference) paired differences (a shared-encoder
    model against the per-asset model of its layer); ``returns``: model -> (seeds, T) net
    returns on the test bars (the trading loss); ``reps``: bootstrap replicates (default
    ``REPS``). Holm's adjustment runs over every paired difference together."""
    reps = REPS if reps is None else int(reps)
    lap = overlaps(lspec)
    out = {"size": SIZE, "stepm_size": STEPM_SIZE, "reps": reps, "mcs": {}, "spa": {},
           "paired": []}
    frames = _frames(forecasts, y, test, returns)
    for key, df in frames.items():
        try:
            res = inference.confidence_set(df, size=SIZE, reps=reps, overlap=lap[key],
                                           seed=seed)
        except ValueError as exc:  # too few complete bars
            res = {"error": str(exc)}
        out["mcs"][key] = {"models": list(df.columns), **res}
        nets = [m for m in networks if m in df.columns]
        if benchmark in df.columns and nets:
            try:
                spa = inference.superior_to(df[benchmark], df[nets], size=STEPM_SIZE,
                                            reps=reps, overlap=lap[key], seed=seed)
            except ValueError as exc:
                spa = {"error": str(exc)}
            out["spa"][key] = {"benchmark": benchmark, "models": nets, **spa}
    todo = [(name, ref) for ref in against if ref in forecasts for name in networks
            if name != ref and name in forecasts]
    todo += [(a, b) for a, b in pairs if a in forecasts and b in forecasts
             and (a, b) not in todo]
    for name, ref in todo:
        for key in PAIRED:
            out["paired"].append(_paired(name, ref, key, forecasts, y, test, lap, reps, seed))
    ps = [p["p_value"] for p in out["paired"]]
    for p, adj in zip(out["paired"], inference.holm(ps)):
        p["p_holm"] = adj
    return out


def _paired(name, ref, key, forecasts, y, test, lap, reps, seed) -> dict:
    row = {"model": name, "against": ref, "metric": key}
    try:
        if key == "log_loss":
            a = bar_losses(forecasts[name], y, test)["log_loss"]  # (Sa, T)
            b = bar_losses(forecasts[ref], y, test)["log_loss"]  # (Sb, T)
            res = inference.paired_bootstrap("mean", a, b, np.zeros(a.shape[1]),
                                             overlap=lap[key], reps=reps, seed=seed)
        else:
            a = np.stack([f[f"ret_{key[3:]}"][test] for f in forecasts[name]])  # (S, T)
            b = np.stack([f[f"ret_{key[3:]}"][test] for f in forecasts[ref]])
            res = inference.paired_bootstrap("ic", a, b, y[f"fwd_{key[3:]}"][test],
                                             overlap=lap[key], reps=reps, seed=seed)
    except (KeyError, ValueError) as exc:  # a side without that forecast, or too few bars
        return {**row, "diff": float("nan"), "ci": [float("nan")] * 2,
                "p_value": float("nan"), "error": str(exc)}
    return {**row, **res}


# ----------------------------------------------------------------- words and tables

def _names(xs) -> str:
    xs = list(xs)
    return ", ".join(xs) if xs else "none"


def _f(x, fmt) -> str:
    return "–" if x is None or not np.isfinite(x) else fmt.format(x)


def markdown(v: dict, keys=None) -> str:
    """The verdict tables (MCS, SPA/StepM, paired differences) in markdown."""
    keys = [k for k in (keys or LOSSES) if k in v["mcs"]]
    lines = [f"Model Confidence Set at {1 - v['size']:.0%} (Hansen–Lunde–Nason, range "
             f"statistic, stationary bootstrap, {v['reps']} replicates): the models "
             "statistically indistinguishable from the best on each loss.", "",
             "| loss | in the set (indistinguishable from the best) | excluded (MCS p-value) "
             "| bars | block |", "|---|---|---|---|---|"]
    for k in keys:
        m = v["mcs"][k]
        if "error" in m:
            lines.append(f"| {LOSSES[k]} | – | – | – | – |")
            continue
        ex = ", ".join(f"{n} ({m['pvalues'][n]:.2f})" for n in m["excluded"]) or "none"
        lines.append(f"| {LOSSES[k]} | {_names(m['included'])} | {ex} | {m['n_bars']} | "
                     f"{m['block']:.0f} |")
    spa = {k: v["spa"][k] for k in keys if k in v["spa"] and "error" not in v["spa"][k]}
    if spa:
        bench = next(iter(spa.values()))["benchmark"]
        lines += ["", f"Does any network beat {bench}? Hansen's SPA p-value for \"none is "
                  f"better\", and the networks Romano–Wolf's StepM finds better "
                  f"(family-wise error {v['stepm_size']:.0%}):", "",
                  "| loss | networks | SPA p | better than " + bench + " (StepM) |",
                  "|---|---|---|---|"]
        for k, s in spa.items():
            lines.append(f"| {LOSSES[k]} | {_names(s['models'])} | {s['spa_p']:.2f} | "
                         f"{_names(s['superior'])} |")
    if v["paired"]:
        lines += ["", "Paired differences (model − reference; two-level bootstrap over seeds "
                  "and blocks of test bars; 95 % interval, p-value, Holm-adjusted over the "
                  f"{len(v['paired'])} tests):", "",
                  "| model − reference | Δ IC 1 bar | Δ IC 5 bars | Δ log-loss |",
                  "|---|---|---|---|"]
        pairs: dict = {}
        for p in v["paired"]:
            pairs.setdefault((p["model"], p["against"]), {})[p["metric"]] = p
        for (name, ref), d in pairs.items():
            cells = []
            for k in PAIRED:
                p = d.get(k)
                if p is None or not np.isfinite(p.get("diff", np.nan)):
                    cells.append("–")
                    continue
                fmt = "{:+.4f}" if k == "log_loss" else "{:+.3f}"
                cells.append(f"{fmt.format(p['diff'])} [{fmt.format(p['ci'][0])}, "
                             f"{fmt.format(p['ci'][1])}], p {_f(p['p_value'], '{:.3f}')} "
                             f"(Holm {_f(p.get('p_holm'), '{:.3f}')})")
            lines.append(f"| {name} − {ref} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sentences(v: dict, keys=None) -> list[str]:
    """Plain statements that follow from the verdicts' numbers, and only those."""
    keys = [k for k in (keys or LOSSES) if k in v["mcs"] and "error" not in v["mcs"][k]]
    out = []
    for k in keys:
        m = v["mcs"][k]
        if not m["excluded"]:
            out.append(f"{LOSSES[k]}: the {1 - v['size']:.0%} confidence set holds all "
                       f"{len(m['models'])} models: the test bars cannot tell them apart.")
        else:
            out.append(f"{LOSSES[k]}: {_names(m['included'])} "
                       f"{'is' if len(m['included']) == 1 else 'are'} in the "
                       f"{1 - v['size']:.0%} confidence set (indistinguishable from the "
                       f"best); {_names(m['excluded'])} "
                       f"{'is' if len(m['excluded']) == 1 else 'are'} worse.")
    for k in keys:
        s = v["spa"].get(k)
        if s is None or "error" in s:
            continue
        if s["superior"]:
            out.append(f"{LOSSES[k]}: StepM finds {_names(s['superior'])} better than "
                       f"{s['benchmark']} (family-wise error {v['stepm_size']:.0%}; SPA p "
                       f"{s['spa_p']:.2f}).")
        else:
            out.append(f"{LOSSES[k]}: no evidence that any network beats {s['benchmark']} "
                       f"(SPA p {s['spa_p']:.2f}; StepM finds none).")
    ok = [p for p in v["paired"] if np.isfinite(p.get("p_holm", np.nan))]
    if ok:
        sig = [p for p in ok if p["p_holm"] < 0.05]
        if not sig:
            out.append(f"Paired differences: none of the {len(ok)} has a Holm-adjusted "
                       "p-value below 0.05: no evidence of a difference.")
        else:
            what = "; ".join(f"{p['model']} − {p['against']} {LOSSES[p['metric']].split(' (')[0]}"
                             f" {p['diff']:+.3f} (Holm p {p['p_holm']:.3f})" for p in sig)
            out.append(f"Paired differences: {len(sig)} of {len(ok)} have a Holm-adjusted "
                       f"p-value below 0.05: {what}; the others: no evidence.")
    return out
