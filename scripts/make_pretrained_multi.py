"""Train the multi-asset checkpoint shipped in the package (``s4_strategies/model/weights/``).

    python scripts/make_pretrained_multi.py [--out PATH] [--seed N]
    python scripts/make_pretrained_multi.py --seal    # add the sha256 to --out, weights unchanged

One small S4D encoder (2 layers, d_model 32, d_state 32) shared by Bybit BTCUSDT, ETHUSDT and
SOLUSDT hourly (the embedded bars; SOLUSDT lists on 2021-10-15 and joins once warmed up),
a head per asset and a long-only portfolio head, trained with the default recipe on
2021-01-01 .. 2022-12-31 (validation = the last 15 %, purged; the rebalancing the strategy
trades is chosen there too); 2023–2024 stays out of sample for the demo's backtests. Same
code path as ``s4trade train --multi``, which prints the command's summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DATA = "bybit:BTCUSDT:60,bybit:ETHUSDT:60,bybit:SOLUSDT:60"
SIZE = ["--layer", "s4d", "--d-model", "32", "--d-state", "32", "--n-layers", "2"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--out", default=str(here / "s4_strategies" / "model" / "weights"
                                         / "s4d_multi_btc_eth_sol_1h.pt"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seal", action="store_true",
                    help="do not train: re-save --out with its sha256 (weights unchanged)")
    args = ap.parse_args(argv)
    if args.seal:
        from s4_strategies.model import seal_checkpoint

        print(f"{args.out}: sha256 {seal_checkpoint(args.out)}")
        return 0

    from s4_strategies.apps.cli import main as cli

    return cli(["train", "--multi", "--data", DATA, "--from", "2021-01-01", "--to", "2022-12-31",
                *SIZE, "--seed", str(args.seed), "--out", args.out])


if __name__ == "__main__":
    sys.exit(main())
