"""Backtest speed: the S4 directional strategy against a plain SMA crossover, same data, same run.

    python scripts/bench_backtest.py [--model PATH] [--bars N] [--repeat R]

Every run goes over the embedded Bybit BTCUSDT hourly bars (35,064 by default) with
runonce on and off. The S4 model is the shipped checkpoint if present, else an untrained
model of the default size (4 layers, d_model 64, d_state 64): speed does not depend on the
weights. Prints a markdown table with each time and its ratio to the SMA run in the same
mode, plus PandasData against our ArrayData feed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def default_size_predictor(df):
    """An untrained default-size S4D with real feature statistics (for timing only)."""
    import torch

    from s4_strategies.features import FeatureSpec, LabelSpec, Normalizer, make_features
    from s4_strategies.model import Predictor, Targets
    from s4_strategies.ssm import build_model

    torch.manual_seed(0)
    spec, lspec = FeatureSpec(), LabelSpec()
    feats = make_features(df, spec).iloc[spec.warmup :]
    model = build_model("s4d", input_dim=len(spec.names), d_model=64, d_state=64, n_layers=4,
                        dropout=0.1, n_classes=3, horizons=lspec.horizons).eval()
    targets = Targets(return_scale=[0.01, 0.02, 0.04], vol_mean=-5.0, vol_std=0.5)
    return Predictor(model, spec, Normalizer.fit(feats), lspec, targets,
                     {"bar_spacing_s": 3600.0})


def timed(fn, repeat):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None)
    ap.add_argument("--bars", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args(argv)

    import backtrader as bt
    import torch

    import feeds
    from s4_strategies import load_model
    from s4_strategies.fees import set_bybit_fees
    from s4_strategies.model import default_checkpoint
    from s4_strategies.strategies.directional import S4DirectionalStrategy

    torch.set_num_threads(1)
    df = feeds.load_embedded("bybit:BTCUSDT:60")
    if args.bars:
        df = df.iloc[: args.bars]
    try:
        path = args.model or default_checkpoint()
        predictor, which = load_model(path), f"checkpoint {os.path.basename(str(path))}"
    except FileNotFoundError:
        predictor, which = default_size_predictor(df), "untrained default-size S4D"

    class SmaCross(bt.Strategy):
        params = dict(fast=24, slow=168)

        def __init__(self):
            self.cross = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast),
                                          bt.ind.SMA(period=self.p.slow))

        def next(self):
            if self.cross[0] > 0:
                self.order_target_percent(target=0.95)
            elif self.cross[0] < 0:
                self.order_target_percent(target=-0.95)

    def run(strategy, runonce, feed="array", **kw):
        def go():
            cerebro = bt.Cerebro(runonce=runonce, stdstats=False)
            if feed == "array":
                cerebro.adddata(feeds.ArrayData(dataname=df))
            else:
                cerebro.adddata(bt.feeds.PandasData(dataname=df.tz_localize(None),
                                                    openinterest=None))
            set_bybit_fees(cerebro.broker)  # the same fees and fractional sizing for both
            cerebro.addstrategy(strategy, **kw)
            return cerebro.run()[0]

        return timed(go, args.repeat)

    rows = []
    for runonce in (True, False):
        sma, _ = run(SmaCross, runonce)
        s4, strat = run(S4DirectionalStrategy, runonce, model=predictor, fees=None)
        rows.append((f"runonce={'on' if runonce else 'off'}", sma, s4, s4 / sma,
                     1.5 if runonce else 3.0))
    pandas_t, _ = run(SmaCross, True, feed="pandas")
    array_t, _ = run(SmaCross, True, feed="array")

    print(f"bars: {len(df):,} (Bybit BTCUSDT 1h), model: {which}, torch threads: 1, "
          f"best of {args.repeat}\n")
    print("| mode | SMA crossover s | S4 directional s | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for mode, sma, s4, ratio, target in rows:
        print(f"| {mode} | {sma:.2f} | {s4:.2f} | {ratio:.2f}× | ≤ {target:g}× | "
              f"{'yes' if ratio <= target else 'NO'} |")
    print("\n| feed (SMA crossover, runonce on) | s | ratio to ArrayData |")
    print("|---|---|---|")
    print(f"| backtrader PandasData | {pandas_t:.2f} | {pandas_t / array_t:.2f}× |")
    print(f"| feeds.ArrayData | {array_t:.2f} | 1.00× |")
    print(f"\nper bar (runonce off): S4 directional adds "
          f"{(rows[1][2] - rows[1][1]) / len(df) * 1e6:.1f} µs over the SMA strategy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
