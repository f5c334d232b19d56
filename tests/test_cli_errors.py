"""Every ``s4trade`` error is one line on stderr with exit code 2; ``--help`` explains all."""

import argparse

import pytest

from s4_strategies.apps.cli import build_parser, main


def _one_line_error(capsys, argv, match):
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own checks
        rc = exc.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("s4trade") and match in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("argv, match", [
    (["backtest", "--strategy", "martingale"], "invalid choice: 'martingale' (choose from"),
    (["backtest", "--strategy", "directional", "--from", "2021-13-01"], "is not a date"),
    (["backtest", "--strategy", "directional", "--params", "{conf: 1}"], "not JSON"),
    (["backtest", "--strategy", "directional", "--params", "[1]"], "must be a JSON object"),
    (["backtest", "--strategy", "directional", "--cash", "-5"], "must be above 0"),
    (["train", "--epochs", "many", "--out", "x.pt"], "'many' is not a int"),
    (["train", "--data", "bybit:BTCUSDT:60"], "the following arguments are required: --out"),
    ([], "the following arguments are required: COMMAND"),
])
def test_argument_errors_are_one_line(capsys, argv, match):
    _one_line_error(capsys, argv, match)


def test_an_unknown_source_names_the_accepted_forms(capsys, tmp_path):
    line = _one_line_error(capsys, ["backtest", "--strategy", "directional", "--data", "nope",
                                    "--out", str(tmp_path)], "unknown data source 'nope'")
    assert "bybit:SYMBOL:INTERVAL" in line and "yahoo:TICKER:INTERVAL" in line


def test_a_missing_checkpoint_is_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["backtest", "--strategy", "directional", "--model",
                             str(tmp_path / "none.pt"), "--out", str(tmp_path)],
                    "no checkpoint at")


def test_unknown_strategy_params_are_named(capsys, tmp_path):
    line = _one_line_error(capsys, ["backtest", "--strategy", "directional", "--params",
                                    '{"conf_treshold": 0.5}', "--out", str(tmp_path)],
                           "unknown directional parameter(s) conf_treshold")
    assert "conf_threshold" in line


def test_two_datas_for_the_directional_strategy(capsys, tmp_path):
    _one_line_error(capsys, ["backtest", "--strategy", "directional", "--data",
                             "bybit:BTCUSDT:60,bybit:ETHUSDT:60", "--out", str(tmp_path)],
                    "trades one data")


def test_train_offline_fails_fast_in_one_line(capsys, tmp_path):
    # sockets are disabled in the tests: the real pybit client cannot reach Bybit
    _one_line_error(capsys, ["train", "--data", "bybit:XRPUSDT:60", "--from", "2024-01-01",
                             "--to", "2024-03-01", "--cache-dir", str(tmp_path),
                             "--out", str(tmp_path / "m.pt")], "XRPUSDT")


def test_train_on_a_missing_file(capsys, tmp_path):
    _one_line_error(capsys, ["train", "--data", str(tmp_path / "mine.csv"),
                             "--out", str(tmp_path / "m.pt")], "no such file")


def test_a_period_after_the_data_is_one_line(capsys, tmp_path):
    _one_line_error(capsys, ["backtest", "--strategy", "directional", "--from", "2030-01-01",
                             "--out", str(tmp_path)], "no bars")


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


@pytest.mark.parametrize("command", ["demo", "train", "compare", "backtest"])
def test_help_gives_each_option_a_meaning_and_its_default(command, capsys):
    parser = _subparsers()[command]
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings} has no help"
        default = action.default
        if action.required or isinstance(default, bool):
            continue
        if default is None:
            assert "(default:" in action.help, f"{command} {action.option_strings}"
        else:
            assert f"(default: {default})" in text, f"{command} {action.option_strings}"
