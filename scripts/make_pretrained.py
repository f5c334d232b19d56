"""Train the checkpoint shipped in the package (``s4_strategies/model/weights/``).

    python scripts/make_pretrained.py [--out PATH] [--seed N]
    python scripts/make_pretrained.py --seal    # add the sha256 to --out, weights unchanged

Default-size S4D (4 layers, d_model 64, d_state 64) with the default recipe on Bybit
BTCUSDT hourly 2021-01-01 .. 2022-12-31 (validation = the last 15 %, purged; the cost-aware
band the directional strategy trades is chosen there too); 2023–2024 stays out of sample for
the demo's backtests. Same code path as ``s4trade train``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    here = Path(__file__).resolve().parents[1]
    ap.add_argument(
        "--out", default=str(here / "s4_strategies" / "model" / "weights" / "s4d_btcusdt_1h.pt")
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seal", action="store_true",
                    help="do not train: re-save --out with its sha256 (weights unchanged)")
    args = ap.parse_args(argv)
    if args.seal:
        from s4_strategies.model import seal_checkpoint

        print(f"{args.out}: sha256 {seal_checkpoint(args.out)}")
        return 0

    from s4_strategies.apps.cli import main as cli

    return cli(["train", "--data", "bybit:BTCUSDT:60", "--from", "2021-01-01", "--to", "2022-12-31",
                "--layer", "s4d", "--seed", str(args.seed),
                "--out", args.out])


if __name__ == "__main__":
    sys.exit(main())
