"""The command line reads as plain text: every command describes itself, no reStructuredText
markup in the help, and ``--version`` names the installed package's version."""

from __future__ import annotations

import argparse
from importlib import metadata

import pytest

from s4_strategies.apps.cli import build_parser, main


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name), sub
                yield from _commands(sub, (*prefix, name))


def test_every_command_has_a_description_and_plain_help():
    parser = build_parser()
    texts = [parser.format_help()]
    commands = list(_commands(parser))
    assert {name[0] for name, _ in commands} >= {"demo", "data", "train", "compare", "research",
                                        "backtest", "live", "shadow-report"}
    for name, sub in commands:
        assert sub.description, f"s4trade {' '.join(name)} has no description"
        texts.append(sub.format_help())
    for text in texts:
        assert "``" not in text and ":func:" not in text and ":class:" not in text, text


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"s4trade {metadata.version('s4-trading')}"
