"""The ``s4trade`` command."""

from __future__ import annotations

import argparse
import sys


def _cmd_demo(args) -> int:
    from s4_strategies.demo import run_demo

    return run_demo(out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s4trade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the end-to-end demo on the embedded data")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
