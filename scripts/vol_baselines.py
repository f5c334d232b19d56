"""How well the volatility baselines track realised volatility in the research folds.

    python scripts/vol_baselines.py [--out docs/results/vol_baselines.md]

For every research spec below and each of its datasets, every fold fits the baselines on its
own training rows (EWMA's decay on training + validation, ``training.vol_baselines``) and
forecasts its test block; the page gives the correlation of each forecast with the
``log_vol`` label (the log realised volatility of the next ``vol_horizon`` bars) over the
stitched test period and per fold. No network is trained: it takes seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import numpy as np

SPECS = ("scripts/research/equities_daily_quick.yaml", "scripts/research/equities_daily.yaml",
         "scripts/research/crypto_hourly_quick.yaml")
ROOT = Path(__file__).resolve().parents[1]


def measure(spec_path: str) -> list[str]:
    from s4_strategies.apps.research import load_frames
    from s4_strategies.features import bar_spacing, make_labels
    from s4_strategies.training import skill
    from s4_strategies.training.baselines import TrailingVol
    from s4_strategies.training.research import load_spec
    from s4_strategies.training.research.run import plan_folds
    from s4_strategies.training.vol_baselines import EWMA, HAR, har_windows, log_returns

    spec = load_spec(ROOT / spec_path)
    frames = load_frames(spec)
    folds = plan_folds(spec, frames)
    lspec = spec.label_spec
    out = [f"### {spec.name} (`{spec_path}`)", ""]
    for ds, df in frames.items():
        fl = folds[ds]
        y = make_labels(df, lspec)["log_vol"].to_numpy()
        r = log_returns(df["close"])
        windows = har_windows(bar_spacing(df.index).total_seconds())
        names = [f"Trailing vol ({lspec.vol_window} bars)", "EWMA", f"HAR {windows}"]
        pred = {k: np.full(len(df), np.nan) for k in names}
        chosen = []
        for f in fl:
            train = slice(max(f.train[0], spec.feature_spec.warmup), f.train[1])
            test = slice(*f.test)
            pred[names[0]][test] = TrailingVol(lspec.vol_window).predict(r)[test]
            ewma = EWMA().fit(r, y, train, slice(train.start, f.val[1]))
            pred[names[1]][test] = ewma.predict(r)[test]
            har = HAR(windows).fit(df, y, rows=train)
            pred[names[2]][test] = har.predict(df)[test]
            chosen.append(f"fold {f.number}: λ {ewma.lam_:.2f}, HAR weights "
                          f"{np.round(har.coef_, 2).tolist()}")
        whole = slice(fl[0].test[0], fl[-1].test[1])
        out += [f"#### {ds}: {len(fl)} folds, test {df.index[whole.start]:%Y-%m-%d} .. "
                f"{df.index[whole.stop - 1]:%Y-%m-%d}", "",
                "| forecast | corr, stitched test | " + " | ".join(
                    f"fold {f.number}" for f in fl) + " |",
                "|---|---|" + "---|" * len(fl)]
        for k in names:
            per = [skill.corr(pred[k][slice(*f.test)], y[slice(*f.test)]) for f in fl]
            out.append(f"| {k} | {skill.corr(pred[k][whole], y[whole]):+.3f} | "
                       + " | ".join(f"{c:+.2f}" for c in per) + " |")
        out += ["", "Fitted: " + "; ".join(chosen) + ".", ""]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/results/vol_baselines.md")
    args = ap.parse_args(argv)
    lines = ["# Volatility baselines in the research folds", "",
             f"Written by `python scripts/vol_baselines.py --out {args.out}` on "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}. Correlation of each forecast with "
             "the `log_vol` label; each fold fits on its own training rows only. HAR: "
             "log volatility on a one-bar range proxy (overnight gap + Garman–Klass) and the "
             "realised volatility of the longer windows, weights on the simplex "
             "(`s4_strategies/training/vol_baselines.py`).", ""]
    for path in SPECS:
        lines += measure(path)
        print(f"{path}: done", file=sys.stderr)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
