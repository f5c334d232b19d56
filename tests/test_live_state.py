"""State that survives restarts (``s4_strategies.live.state``): save after every bar, restore
at start, and the restored run continues exactly where the uninterrupted one would be."""

from __future__ import annotations

import json
import math
import os
import struct

import backtrader as bt
import numpy as np
import pytest

import feeds
import feeds.atomic as atomic
import s4_strategies
from s4_strategies.live import (
    StateError,
    StateMismatch,
    StateSaver,
    codec,
    fingerprint,
    load_state,
    save_state,
)
from s4_strategies.strategies.directional import S4DirectionalStrategy

NAME = "bybit:BTCUSDT:60"
LINES = ("signal", "confidence", "expected_signal", "pred_return", "pred_move", "pred_vol")
N, K, BACKFILL = 400, 300, 190  # bars in all, the restart bar, backfill (>= warm-up 169)
# argmax rule with no confidence floor and a regime filter: a decision (and often an order)
# on most bars, and strategy state (target, trailing volatilities) that matters.
STRAT = dict(rule="argmax", conf_threshold=0.0, min_change=0.05, regime_quantile=0.6,
             regime_window=48, fees=None)


class Rec(S4DirectionalStrategy):
    """The directional strategy, recording its lines and decisions on every bar."""

    def __init__(self):
        super().__init__()
        self.rows, self.decisions = [], []

    def prenext(self):
        self._row()

    def next(self):
        before = self._pending
        super().next()
        self.decisions.append((self.data.datetime[0], self._target, self._side,
                               self._pending is not before))
        self._row()

    def _row(self):
        self.rows.append([self.data.datetime[0], *(getattr(self.s4, k)[0] for k in LINES)])


@pytest.fixture(scope="module")
def bars():
    return feeds.load_embedded(NAME, todate="2021-06-30 23:00").iloc[-N:]


@pytest.fixture(scope="module")
def model(tiny_checkpoint):
    return s4_strategies.load_model(tiny_checkpoint)


def feed(df, name=NAME, compression=60):
    return feeds.ArrayData(dataname=df, name=name, timeframe=bt.TimeFrame.Minutes,
                           compression=compression)


def run(model, df, path=None, saver=None, ind=None, data=None, runonce=False):
    c = bt.Cerebro(runonce=runonce, stdstats=False)
    c.adddata(data if data is not None else feed(df))
    c.addstrategy(Rec, model=model, indicator=ind, **STRAT)
    if path is not None:
        c.addanalyzer(StateSaver, _name="state", path=path, **(saver or {}))
    return c.run()[0]


@pytest.fixture(scope="module")
def full(model, bars):
    return run(model, bars)


@pytest.fixture(scope="module")
def saved(model, bars, tmp_path_factory):
    """Bars [0, K) with the saver: the file holds the state after bar K - 1."""
    path = tmp_path_factory.mktemp("state") / "btc.json"
    strat = run(model, bars.iloc[:K], path=path)
    return path, strat


def _same(a, b) -> bool:
    """Equal in type and bits, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray) or isinstance(a, np.generic):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return (list(a) == list(b) and all(type(k) is type(j) for k, j in zip(a, b))
                and all(_same(a[k], b[k]) for k in a))
    return a == b


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


# -- the key test ------------------------------------------------------------------------
def test_restart_continues_the_uninterrupted_run(model, bars, full, saved, tmp_path):
    path = _copy(saved[0], tmp_path / "s.json")
    sf = load_state(path)
    last = bars.index[K - 1]
    assert sf.bar["time"] == last.isoformat() and sf.bar["close"] == bars["close"].iloc[K - 1]
    assert sf.fingerprint == fingerprint(model) and sf.data["name"] == NAME
    assert sf.indicators["s4"]["spacing_s"] == 3600.0
    assert sf.strategy["class"] == "Rec" and len(sf.strategy["state"]["vols"]) == 48

    resumed = run(model, bars.iloc[K - BACKFILL:], path=path)
    assert resumed.analyzers.state.get_analysis()["restored"] == last.isoformat()
    a, b = np.array(full.rows)[K:], np.array(resumed.rows)[BACKFILL:]
    assert np.isfinite(a[:, 1:]).all()
    np.testing.assert_array_equal(a, b)  # bit for bit
    assert np.isnan(np.array(resumed.rows)[:BACKFILL, 1:]).all()  # held bars: lines NaN
    t_k = full.rows[K][0]
    dec_full = [d for d in full.decisions if d[0] >= t_k]
    dec_res = [d for d in resumed.decisions if d[0] >= t_k]
    assert dec_full == dec_res and len(dec_full) == N - K
    assert sum(d[3] for d in dec_full) >= 5  # it does trade
    # The file now holds the state after the last bar, the uninterrupted run's own.
    end = load_state(path)
    assert end.bar["time"] == bars.index[-1].isoformat()
    assert _same(end.indicators["s4"]["state"], full.s4.get_state())
    # the same state but "aim", the position in units the last order aimed at: the resumed
    # run's broker (not restored here) holds other cash, so its orders have other sizes
    mine = {k: v for k, v in end.strategy["state"].items() if k != "aim"}
    assert mine == {k: v for k, v in full.get_state().items() if k != "aim"}

    # Without the restore the same bars give other lines: the state is what carries them.
    fresh = run(model, bars.iloc[K - BACKFILL:])
    assert not np.array_equal(np.array(fresh.rows)[BACKFILL:, 1:], a[:, 1:])


def test_indicator_resume_param(model, bars, full, saved):
    entry = load_state(saved[0]).indicators["s4"]
    strat = run(model, bars.iloc[K - BACKFILL:], ind=dict(resume=entry))
    np.testing.assert_array_equal(np.array(strat.rows)[BACKFILL:], np.array(full.rows)[K:])


# -- the serialiser ----------------------------------------------------------------------
def test_codec_round_trips_exactly(saved):
    state = saved[1].s4.get_state()
    assert any(isinstance(k, int) for k in state["stream"]["features"]["r2"])
    odd = {
        1: (math.nan, math.inf, -math.inf, -0.0, 1e-310, 0.1), "s": "é", "n": None,
        "b": [True, False, b"\x00\xff"], (2, "x"): {"__not_a_tag": 1}, None: 2**70,
        "c": np.array([[1 + 2j, np.nan * 1j]], dtype=np.complex128),
        "f32": np.arange(6, dtype=np.float32).reshape(2, 3).T,  # not C-contiguous
        "z": np.zeros((0, 3), dtype=np.int8), "0d": np.array(3.5), "bool": np.array([True]),
        "rec": np.array([(1, (2.0, 3.0))], dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        "dt": np.array(["2021-06-01T00:00"], dtype="datetime64[ns]"),
        "sc": [np.float32(1.5), np.int64(-3), np.complex64(1j), np.float64(math.nan)],
        "nanbits": struct.unpack("<d", bytes.fromhex("010000000000f87f"))[0],
    }
    for obj in (state, odd):
        text = json.dumps(codec.encode(obj), allow_nan=False)
        assert _same(codec.decode(json.loads(text)), obj)
    with pytest.raises(TypeError, match="cannot be saved"):
        codec.encode({"x": [object()]})
    with pytest.raises(TypeError, match="object"):
        codec.encode(np.array([1, "a"], dtype=object))


# -- the file: atomic, and refused when damaged ------------------------------------------
def test_failed_write_leaves_the_old_file(saved, tmp_path, monkeypatch):
    path = _copy(saved[0], tmp_path / "s.json")
    before = path.read_bytes()
    real = os.fdopen

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: HalfWriter(real(fd, mode)))
    with pytest.raises(OSError, match="disk full"):
        save_state(path, saved[1])
    monkeypatch.setattr(atomic.os, "fdopen", real)

    def boom(*a):
        raise KeyboardInterrupt  # killed between the write and the rename

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        save_state(path, saved[1])
    assert path.read_bytes() == before
    left = sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock")  # and its lock
    assert left == ["s.json"]  # no temporary files left


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "format", "empty"])
def test_damaged_file_is_a_state_error(saved, tmp_path, model, bars, damage):
    path = _copy(saved[0], tmp_path / "s.json")
    raw = path.read_bytes()
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":  # one digit of a saved price
        i = raw.index(b'"close":') + 9
        raw = raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1:]
    elif damage == "garbage":
        raw = b"\x80\x04\x95 not json"
    elif damage == "format":
        raw = raw.replace(b"s4-trading-state", b"something-else", 1)
    else:
        raw = b""
    path.write_bytes(raw)
    with pytest.raises(StateError, match=str(path)):
        load_state(path)
    with pytest.raises(StateError, match=str(path)):  # never a silent fresh start
        run(model, bars.iloc[K - BACKFILL:], path=path)


def test_missing_file(model, bars, tmp_path):
    path = tmp_path / "none.json"
    with pytest.raises(FileNotFoundError):
        run(model, bars.iloc[:200], path=path, saver=dict(resume=True))
    strat = run(model, bars.iloc[:200], path=path, saver=dict(every=7, fsync=False))
    info = strat.analyzers.state.get_analysis()
    assert info["restored"] is None and info["saves"] == 200 // 7 + 1  # + the last, at stop
    assert load_state(path).bar["time"] == bars.index[199].isoformat()


# -- refusals ----------------------------------------------------------------------------
def _resume(model, bars, saved, tmp_path, df=None, data=None, mdl=None, saver=None):
    path = _copy(saved[0], tmp_path / "s.json")
    df = bars.iloc[K - BACKFILL:] if df is None else df
    return run(mdl or model, df, path=path, data=data, saver=saver)


def test_other_checkpoint_is_refused(model, bars, saved, tmp_path, tiny_checkpoint):
    import torch

    other = s4_strategies.load_model(tiny_checkpoint)
    assert fingerprint(other) == fingerprint(model)
    with torch.no_grad():
        next(other.model.parameters()).view(-1)[0] += 1e-6
    with pytest.raises(StateMismatch, match="checkpoint") as err:
        _resume(model, bars, saved, tmp_path, mdl=other)
    assert fingerprint(model) in str(err.value) and fingerprint(other) in str(err.value)


@pytest.mark.parametrize("name, compression", [("bybit:ETHUSDT:60", 60), (NAME, 240)])
def test_other_data_is_refused(model, bars, saved, tmp_path, name, compression):
    data = feed(bars.iloc[K - BACKFILL:], name=name, compression=compression)
    with pytest.raises(StateMismatch, match="the data") as err:
        _resume(model, bars, saved, tmp_path, data=data)
    assert NAME in str(err.value) and f"'compression': {compression}" in str(err.value)


def test_other_bar_at_the_saved_time_is_refused(model, bars, saved, tmp_path):
    df = bars.iloc[K - BACKFILL:].copy()
    df.iloc[BACKFILL - 1, df.columns.get_loc("low")] *= 1 - 1e-7
    with pytest.raises(StateMismatch, match="differs from the saved one"):
        _resume(model, bars, saved, tmp_path, df=df)
    df = bars.iloc[K - BACKFILL:].copy()  # within 1e-9 relative: the same bar
    df.iloc[BACKFILL - 1, df.columns.get_loc("volume")] *= 1 + 1e-12
    _resume(model, bars, saved, tmp_path, df=df)


def test_gap_after_the_saved_bar_is_refused(model, bars, saved, tmp_path, full):
    df = bars.iloc[K - BACKFILL:].drop(bars.index[K:K + 2])
    with pytest.raises(StateMismatch, match="not one bar spacing"):
        _resume(model, bars, saved, tmp_path, df=df)
    with pytest.warns(UserWarning, match="across the gap"):
        strat = _resume(model, bars, saved, tmp_path, df=df, saver=dict(allow_gap=True))
    assert np.isfinite(np.array(strat.rows)[BACKFILL:, 1:]).all()


def test_feed_that_misses_the_saved_bar_is_refused(model, bars, saved, tmp_path):
    df = bars.iloc[K - BACKFILL:].drop(bars.index[K - 1])  # history without T
    with pytest.raises(StateMismatch, match="never showed the saved bar"):
        _resume(model, bars, saved, tmp_path, df=df)
    with pytest.raises(StateMismatch, match="never showed the saved bar"):
        _resume(model, bars, saved, tmp_path, df=bars.iloc[K:])  # no backfill at all


def test_short_backfill_is_refused(model, bars, saved, tmp_path):
    with pytest.raises(StateMismatch, match="backfill"):
        _resume(model, bars, saved, tmp_path, df=bars.iloc[K - 50:])


def test_runonce_is_refused(model, bars, saved, tmp_path):
    path = _copy(saved[0], tmp_path / "s.json")
    with pytest.raises(StateError, match="runonce=False"):
        run(model, bars.iloc[K - BACKFILL:], path=path, runonce=True)


def test_other_indicator_settings_are_refused(model, bars, saved, tmp_path):
    path = _copy(saved[0], tmp_path / "s.json")
    with pytest.raises(StateMismatch, match="indicator settings"):
        run(model, bars.iloc[K - BACKFILL:], path=path, ind=dict(reset_gap=3))


def test_long_float_lists_are_packed_bit_for_bit():
    obj = {"w": [0.1 * i for i in range(20)] + [math.nan, -0.0, math.inf, 5e-324],
           "short": [1.5, 2.5], "mixed": [1.0] * 9 + [2]}
    enc = codec.encode(obj)
    assert set(enc["w"]) == {"__floats__"} and isinstance(enc["short"], list)
    assert isinstance(enc["mixed"], list)  # an int among them: not packed, types kept
    assert _same(codec.decode(json.loads(json.dumps(enc))), obj)


@pytest.mark.parametrize("field, value", [("target", float("nan")), ("side", 2),
                                          ("vols", [0.01, float("inf")]), ("cool", -1)])
def test_a_strategy_state_that_cannot_be_is_refused_even_with_a_good_checksum(
        model, bars, saved, tmp_path, field, value):
    from s4_strategies.live.codec import dump_bytes, write_atomic
    from s4_strategies.live.state import FORMAT, VERSION, StateError

    sf = load_state(saved[0])
    body = dict(sf.body, strategy={**sf.strategy, "state": {**sf.strategy["state"],
                                                            field: value}})
    path = write_atomic(tmp_path / "s.json", dump_bytes(body, FORMAT, VERSION))
    with pytest.raises(StateError, match=f"unusable: Rec state: {field}"):
        run(model, bars.iloc[K - BACKFILL:], path=path)
