"""A placebo for the whole research pipeline: the same spec rerun on bars whose returns carry
no directional information, so that the real results can be read against what training,
searching, selecting on validation and stitching produce from nothing.

``flip`` (the default null): every bar's path relative to the previous close is reflected
with probability ½, independently of everything (bar 0 is kept)::

    s_t ∈ {−1, +1} at random,   c'_t = c'_{t−1} + s_t (c_t − c_{t−1})          (log prices)
    o'_t = c'_{t−1} + s_t (o_t − c_{t−1}),   volume kept,
    s_t = +1: h'_t = c'_{t−1} + (h_t − c_{t−1}),  l'_t = c'_{t−1} + (l_t − c_{t−1})
    s_t = −1: h'_t = c'_{t−1} − (l_t − c_{t−1}),  l'_t = c'_{t−1} − (h_t − c_{t−1})

Every bar's absolute return, gap and range are unchanged, so the volatility process is
exactly the data's (a volatility forecast keeps its skill, as it should), and the sign of
every return is a coin toss: no feature can predict it, and no trading rule can earn more
than chance after costs.

``blocks``: the bars' paths relative to the previous close (with their volumes) shuffled in
blocks of ``block`` bars and chained again. Cheaper than nothing to have, weaker as a null:
dependence inside a block (directional too) survives, the volatility clustering across
blocks does not.

The real statistics (per model: IC 1 and 5 bars, vol corr, stitched net Sharpe, DSR; per
dataset: the PBO over all candidate paths and the selected configuration's DSR) are placed
in the null distribution of the ``N`` placebo runs: their percentile (share of the null
below, ties half) and the one-sided p-value ``(1 + #{null at least as good}) / (N + 1)``
(higher is better, except for the PBO).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

KINDS = ("flip", "blocks")


def _seed(*parts) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _rebuild(df: pd.DataFrame, rel: np.ndarray, volume: np.ndarray | None) -> pd.DataFrame:
    """Bars from per-bar log paths ``rel`` (n, 4: open, high, low, close relative to the
    previous close; row 0 unused: bar 0 is kept as it is) chained from bar 0's close."""
    out = df.copy()
    c0 = np.log(float(df["close"].iloc[0]))
    close = c0 + np.concatenate([[0.0], np.cumsum(rel[1:, 3])])  # (n,)
    prev = np.concatenate([[np.nan], close[:-1]])
    for j, col in enumerate(("open", "high", "low", "close")):
        v = np.exp(prev + rel[:, j])
        v[0] = float(df[col].iloc[0])
        out[col] = v
    if volume is not None:
        out["volume"] = volume
    return out


def _relative(df: pd.DataFrame) -> np.ndarray:
    logs = np.log(df[["open", "high", "low", "close"]].to_numpy(dtype=np.float64))  # (n, 4)
    prev = np.concatenate([[np.nan], logs[:-1, 3]])
    return logs - prev[:, None]  # (n, 4); row 0 NaN


def sign_flip(df: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The ``flip`` placebo of ``df`` (module docstring); the index and volume kept."""
    rel = _relative(df)
    s = np.random.default_rng(seed).choice([-1.0, 1.0], size=len(df))  # (n,)
    s[0] = 1.0
    flipped = np.where(s[:, None] > 0, rel, -rel[:, [0, 2, 1, 3]])  # high <-> low reflected
    return _rebuild(df, flipped, None)


def block_permute(df: pd.DataFrame, seed: int, block: int) -> pd.DataFrame:
    """The ``blocks`` placebo: whole bars (path and volume) shuffled in blocks of ``block``
    bars after bar 0, then chained again; the index kept."""
    if block < 1:
        raise ValueError(f"block must be >= 1 bar, got {block}")
    rel = _relative(df)
    n = len(df)
    starts = np.arange(1, n, block)
    order = np.random.default_rng(seed).permutation(len(starts))
    idx = np.concatenate([[0], *[np.arange(starts[k], min(starts[k] + block, n))
                                 for k in order]])
    vol = df["volume"].to_numpy()[idx] if "volume" in df else None
    return _rebuild(df, rel[idx], vol)


def placebo_frames(frames: dict[str, pd.DataFrame], run: int, kind: str = "flip",
                   block: int = 48) -> dict[str, pd.DataFrame]:
    """Placebo run ``run``'s bars of every dataset (seeded by dataset and run)."""
    if kind not in KINDS:
        raise ValueError(f"placebo kind must be one of {KINDS}, got {kind!r}")
    if kind == "flip":
        return {ds: sign_flip(df, _seed(ds, run)) for ds, df in frames.items()}
    return {ds: block_permute(df, _seed(ds, run), block) for ds, df in frames.items()}


def statistics(report: dict) -> dict[str, float]:
    """The statistics a placebo compares, from one dataset's report: ``"<model>|<stat>"``
    for IC 1, IC 5, vol corr, net Sharpe and DSR, and the dataset's ``pbo`` and
    ``selected dsr``."""
    out = {}
    for row in report["skill"]:
        for key in ("ic_1", "ic_5", "vol_corr"):
            if row.get(key) is not None and np.isfinite(row[key]):
                out[f"{row['model']}|{key}"] = float(row[key])
    for row in report["trading"]:
        v = row.get("net_sharpe")
        if (v is None or not np.isfinite(v)) and row.get("trades") == 0:
            v = 0.0  # a rule that never trades earns nothing: Sharpe 0, not "undefined"
        if v is not None and np.isfinite(v):
            out[f"{row['model']}|net_sharpe"] = float(v)
    for name, d in report["dsr"].items():
        if np.isfinite(d["dsr"]):
            out[f"{name}|dsr"] = float(d["dsr"])
    if (report["pbo"].get("all") or {}).get("pbo") is not None:
        out["all|pbo"] = float(report["pbo"]["all"]["pbo"])
    if report["selected_dsr"] and np.isfinite(report["selected_dsr"]["dsr"]):
        out["selected|dsr"] = float(report["selected_dsr"]["dsr"])
    return out


def place(real: dict[str, float], null: list[dict[str, float]]) -> dict:
    """Each real statistic against its null values: ``{key: {"real", "null": [...],
    "percentile", "p", "n"}}`` (keys present in the real run and at least one null run).
    ``p = (1 + #{null at least as good}) / (n + 1)``: at least as high, or for PBO (lower
    is better) at least as low."""
    out = {}
    for key, x in real.items():
        vals = np.array([r[key] for r in null if key in r and np.isfinite(r[key])])
        if not len(vals):
            continue
        below, ties = np.sum(vals < x), np.sum(vals == x)
        good = vals <= x if key.endswith("|pbo") else vals >= x
        out[key] = {"real": x, "null": vals.tolist(),
                    "percentile": float((below + 0.5 * ties) / len(vals)),
                    "p": float((1 + np.sum(good)) / (len(vals) + 1)), "n": int(len(vals))}
    return out


STAT_NAMES = {"ic_1": "IC 1 bar", "ic_5": "IC 5 bars", "vol_corr": "vol corr",
              "net_sharpe": "net Sharpe", "dsr": "DSR", "pbo": "PBO"}


def markdown(placed: dict) -> str:
    """The placebo table of one dataset."""
    meta = placed.get("_meta", {})
    n = meta.get("runs")
    lines = [f"Placebo ({meta.get('kind', 'flip')}: the spec rerun {n} time{'s' * (n != 1)} "
             "on bars whose "
             "returns carry no direction; volatility kept): where each real number falls in "
             "the null distribution.", "",
             "| model | statistic | real | null median [min, max] | percentile in the null | "
             "p (null at least as good) |", "|---|---|---|---|---|---|"]
    for key, d in placed.items():
        if key.startswith("_"):
            continue
        model, stat = key.split("|")
        v = np.array(d["null"])
        fmt = "{:+.3f}" if stat in ("ic_1", "ic_5", "net_sharpe") else "{:.2f}"
        lines.append(f"| {model} | {STAT_NAMES[stat]} | {fmt.format(d['real'])} | "
                     f"{fmt.format(float(np.median(v)))} [{fmt.format(v.min())}, "
                     f"{fmt.format(v.max())}] | {d['percentile']:.0%} of {d['n']} | "
                     f"{d['p']:.2f} |")
    lines += [""] + [f"- {t}" for t in sentences(placed)]
    return "\n".join(lines)


def sentences(placed: dict) -> list[str]:
    """What the placebo table allows one to say, from its numbers only."""
    n = placed.get("_meta", {}).get("runs")
    rows = {k: d for k, d in placed.items() if not k.startswith("_")}
    if not rows or not n:
        return []
    floor = 1.0 / (n + 1)
    out = [f"With {n} placebo runs the smallest p-value possible is {floor:.2f}"
           + (": no real number can reach 0.05 against this null." if floor > 0.05 else ".")]
    beyond = [k for k, d in rows.items() if d["p"] <= 1.0 / (d["n"] + 1) + 1e-12]
    inside = [k for k in rows if k not in beyond]

    def name(k):
        model, stat = k.split("|")
        return f"{model} {STAT_NAMES[stat]}"

    if beyond:
        out.append("Better than every placebo run: " + ", ".join(name(k) for k in beyond)
                   + ".")
    if inside:
        out.append("Inside the placebo distribution (some run as good or better): "
                   + ", ".join(name(k) for k in inside) + ".")
    return out
