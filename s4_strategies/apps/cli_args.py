"""Argument types and the help format shared by the ``s4trade`` subcommands."""

from __future__ import annotations

import argparse
import json

from .sources import check_date

DEFAULT_DATA = "bybit:BTCUSDT:60"
#: the top-level help, plain text
PROGRAM_HELP = """\
Structured state space models (S4, S4D, a selective SSM) for backtrader: download data,
train, compare, research, backtest, and trade in shadow mode or on Bybit.

--data takes an embedded name (bybit:BTCUSDT:60, yahoo:AAPL:1d, ...), a CSV or parquet
file of bars, bybit:SYMBOL:INTERVAL[:linear|spot|inverse] or
yahoo:TICKER:INTERVAL[:adjusted] (the full spelling reads what 's4trade data download'
fetched where an embedded sample has the same name). Errors are one line on stderr with exit code 2.

Start with 's4trade demo'; 's4trade COMMAND --help' describes each command."""


def _date_arg(value: str) -> str:
    try:
        return check_date(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(kind):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a {kind.__name__}") from None
        if not number > 0:
            raise argparse.ArgumentTypeError(f"{value!r} must be above 0")
        return number

    parse.__name__ = kind.__name__
    return parse


def _json_object(value: str) -> dict:
    try:
        obj = json.loads(value)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc.msg} at column {exc.colno}); "
                                         "e.g. '{\"conf_threshold\": 0.5}'") from None
    if not isinstance(obj, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"conf_threshold\": 0.5}'")
    return obj


def _latency_ms(value: str) -> str:
    from ..market_making.latency import parse_latency

    try:
        parse_latency(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


class _Help(argparse.HelpFormatter):
    """Each option's meaning and its default (spelled out in the help where it is None)."""

    def _get_help_string(self, action):
        text = action.help or ""
        quiet = action.default is None or action.default is False
        if "%(default)" in text or action.required or quiet or action.default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


def _formatter(prog):
    return _Help(prog, max_help_position=32)
