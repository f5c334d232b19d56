"""One lock around every cache and state write: two processes filling the same cache lose
nothing, a killed writer's lock and temporary files do not outlive it."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from feeds.atomic import locked, write_atomically
from feeds.cache import cached_fetch, read_cache, write_cache
from feeds.errors import DataError

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _bars(start, end) -> pd.DataFrame:
    """The hourly bars opening in [start, end] (as an exchange answers a range)."""
    idx = pd.date_range(pd.Timestamp(start).ceil("h"), pd.Timestamp(end).floor("h"), freq="1h")
    close = 100.0 + np.arange(len(idx)) * 0.01 + idx.hour.to_numpy()
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1.0}, index=idx)


def _slow_fetch(a, b):
    time.sleep(0.4)  # the other process reads the (empty) cache meanwhile
    return _bars(a, b)


def _fill(path, start, end, barrier) -> None:
    barrier.wait()
    cached_fetch(path, _slow_fetch, start, end, name="test")


def test_two_processes_filling_one_cache_lose_nothing(tmp_path):
    path = tmp_path / "bybit_mainnet_linear_BTCUSDT_60.parquet"
    # fork where there is one (the children run pandas only); spawn elsewhere
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(2)
    first = (T0, T0 + pd.Timedelta(days=3))
    second = (T0 + pd.Timedelta(days=10), T0 + pd.Timedelta(days=12))
    procs = [ctx.Process(target=_fill, args=(path, *rng, barrier)) for rng in (first, second)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    held = read_cache(path)
    for a, b in (first, second):
        assert _bars(a, b).index.isin(held.index).all(), f"the download of {a}..{b} was lost"


def test_a_killed_writes_temporaries_go_with_the_next_write(tmp_path):
    from s4_strategies.live.codec import write_atomic

    cache = tmp_path / "cache" / "yahoo_AAPL_1d_adj.parquet"
    state = tmp_path / "state" / "s.json"
    left = [cache.with_name(f".{cache.name}.k3j_x9a2.tmp"),
            state.with_name(f".{state.name}.zz99yy88.tmp")]
    for p in left:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"half a file")  # young: a killed write, not an old one
    unrelated = state.with_name(".other.json.abcd1234.tmp")
    unrelated.write_bytes(b"someone else's")
    write_cache(cache, _bars(T0, T0 + pd.Timedelta(hours=5)))
    write_atomic(state, b"{}")
    assert not any(p.exists() for p in left) and unrelated.exists()
    assert sorted(p.name for p in state.parent.iterdir() if p.suffix != ".lock") == [
        unrelated.name, "s.json"]


def test_a_lock_dies_with_its_process(tmp_path):
    path = tmp_path / "s.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from feeds.atomic import file_lock; "
         f"lock = file_lock({str(path)!r}); lock.acquire(); print('held', flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DataError, match="another process holds its lock"):
            with locked(path, timeout=0.2):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        with locked(path, timeout=5):  # the OS released it with the process
            write_atomically(path, lambda f: f.write(b"{}"))
    finally:
        holder.kill()
        holder.wait()
    assert path.read_bytes() == b"{}"
