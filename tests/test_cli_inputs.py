"""What ``s4trade`` reads from its user: bar times of CSV files in any common form, the
in-sample rule of ``backtest`` on any source, and one clear line for each mistake."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import feeds
from s4_strategies.apps.backtest import InSampleWarning, run_backtest
from s4_strategies.apps.cli import main
from s4_strategies.apps.sources import load_source

BARS = feeds.load_embedded("bybit:BTCUSDT:60", "2021-06-01", "2021-06-10 23:00")


def _csv(tmp_path, times, column="timestamp"):
    df = BARS.reset_index(drop=True)
    df.insert(0, column, times)
    path = tmp_path / "bars.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("form", ["s", "ms", "us", "iso_naive", "iso_z", "iso_offset",
                                  "first_column"])
def test_csv_bar_times_in_every_common_form(tmp_path, form):
    ns = BARS.index.as_unit("ns").asi8
    times = {"s": ns // 10**9, "ms": ns // 10**6, "us": ns // 10**3,
             "iso_naive": BARS.index.strftime("%Y-%m-%d %H:%M:%S"),
             "iso_z": BARS.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
             "iso_offset": BARS.index.tz_convert("Europe/Berlin").strftime(
                 "%Y-%m-%dT%H:%M:%S%z"),
             "first_column": BARS.index.strftime("%Y-%m-%d %H:%M")}[form]
    path = _csv(tmp_path, times, "when" if form == "first_column" else "timestamp")
    df = load_source(str(path))
    assert (df.index == BARS.index).all() and df["close"].equals(BARS["close"].reset_index(
        drop=True).set_axis(df.index))


@pytest.mark.parametrize("times, row, shown", [
    (["2021-06-01 00:00", "yesterday"], 2, "'yesterday'"),
    ([1622505600000, 1622509200], 2, "1622509200"),  # ms then s
    ([0, 1], 1, "0"),  # row numbers, not times
])
def test_a_column_that_is_not_bar_times_is_named_with_its_row(tmp_path, times, row, shown):
    df = pd.DataFrame({"timestamp": times, "open": 1.0, "high": 1.0, "low": 1.0,
                       "close": 1.0, "volume": 1.0})
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    with pytest.raises(feeds.DataError, match=rf"column 'timestamp' is not a bar time: row "
                                              rf"{row} holds {shown}"):
        load_source(str(path))


class _Seen:
    """A loaded model as far as the period rule goes: trained to 2021-05-31 23:00."""

    class label_spec:  # noqa: N801
        max_horizon = 24

    meta = {"bar_spacing_s": 3600.0,
            "periods": {"train": ["2021-01-01 00:00:00+00:00", "2021-05-24 11:00:00+00:00"],
                        "val": ["2021-05-25 12:00:00+00:00", "2021-05-31 23:00:00+00:00"]}}


class _Stop(Exception):
    pass


def _period_warnings(monkeypatch, data, fromdate, todate):
    """run_backtest up to the point it has chosen the period: its in-sample warnings."""
    from s4_strategies.apps import backtest

    def stop(*args, **kwargs):
        raise _Stop

    monkeypatch.setattr(backtest, "build_cerebro", stop)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(_Stop):
            run_backtest("directional", data, model=_Seen(), fromdate=fromdate, todate=todate)
    return [str(w.message) for w in seen if issubclass(w.category, InSampleWarning)]


def test_a_period_after_the_checkpoints_data_is_out_of_sample(monkeypatch, tmp_path):
    # the last validation label reads 24 bars past 2021-05-31 23:00: unseen from 06-02 00:00
    assert not _period_warnings(monkeypatch, "bybit:BTCUSDT:60", "2021-06-05", "2021-06-09")
    assert not _period_warnings(monkeypatch, "bybit:BTCUSDT:60", "2021-06-02 00:00", None)
    later = _csv(tmp_path, BARS.index.strftime("%Y-%m-%d %H:%M"))  # starts 2021-06-01 00:00
    assert not _period_warnings(monkeypatch, str(later), "2021-06-05", "2021-06-09")
    inside = _period_warnings(monkeypatch, str(later), "2021-06-01 12:00", "2021-06-09")
    assert len(inside) == 1 and "out of sample starts at 2021-06-02 00:00" in inside[0]


def test_from_after_to_says_so(capsys):
    rc = main(["backtest", "--strategy", "directional", "--from", "2023-06-01", "--to",
               "2023-01-01"])
    assert rc == 2
    assert "--from 2023-06-01 is after --to 2023-01-01" in capsys.readouterr().err


def test_a_spacing_mismatch_names_the_way_to_override_it():
    from s4_strategies import default_checkpoint, load_model
    from s4_strategies.model import CheckpointError

    with pytest.raises(CheckpointError, match=r"""--params '\{"indicator": \{"strict": """):
        load_model(default_checkpoint()).check_spacing(86_400.0)


def test_live_without_keys_names_the_account(monkeypatch, tmp_path):
    from s4_strategies import default_checkpoint
    from s4_strategies.apps.live import run_live

    monkeypatch.delenv("BYBIT_API_KEY", raising=False)
    monkeypatch.delenv("BYBIT_API_SECRET", raising=False)
    with pytest.raises(ValueError, match=r"keys of a testnet account\)") as err:
        run_live("bybit:BTCUSDT:60", "testnet", model=default_checkpoint(), out=tmp_path,
                 session=object(), ws_factory=lambda *a, **k: None)
    assert "{mode}" not in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"conf_threshold": "high"}, "directional parameter conf_threshold: input should be a "
                                 "valid number, got 'high'"),
    ({"long_only": 1}, "directional parameter long_only: input should be a valid boolean"),
])
def test_strategy_params_of_the_wrong_type_are_named(params, message):
    from s4_strategies.apps.backtest import build_cerebro

    with pytest.raises(ValueError, match=message):
        build_cerebro("directional", ["bybit:BTCUSDT:60"], model=_Seen(), params=params)


def test_compare_quick_is_a_smoke_run(monkeypatch):
    """--quick: one seed and a few months unless asked otherwise (the full study's five
    seeds over four years took 13 minutes); explicit values still win."""
    from s4_strategies.training import compare

    seen = {}

    def fake(**kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(compare, "run_comparison", fake)
    with pytest.raises(_Stop):
        main(["compare", "--quick"])
    assert seen["seeds"] == 1 and seen["quick"] and seen["test"][1] < "2022"
    assert seen["train"] == ("2021-01-01", "2021-05-31")
    with pytest.raises(_Stop):
        main(["compare", "--quick", "--seeds", "3", "--test-to", "2021-12-31"])
    assert seen["seeds"] == 3 and seen["test"] == ("2021-07-01", "2021-12-31")
    with pytest.raises(_Stop):
        main(["compare"])
    assert seen["seeds"] == 5 and seen["test"] == ("2023-01-01", "2024-12-31")
