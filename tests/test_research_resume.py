"""``kill -9`` at any point of a research run, then a rerun with the same ``--out``: the same
trial set, the same selections and the same report as a run never interrupted. The driver
dies in a subprocess (``research_kill.py``) at the points a kill can find it; a local Ray
dies with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from test_research_run import TINY  # tests/ is on sys.path

from s4_strategies.training.research import parse_spec
from s4_strategies.training.research.engine import SerialExecutor
from s4_strategies.training.research.run import research

SPEC = {**TINY, "walk_forward": {**TINY["walk_forward"], "test_end": "2022-12-31"},
        "search": {"trials_per_fold": 3}}
N_TRIALS = 3 + 1 + 1  # three S4D settings, the chosen one's second seed, the linear model
KEYS = ["trial_id", "status", "phase", "index", "params", "seed", "val_log_loss",
        "test_log_loss", "test_ic_5", "test_net_sharpe", "band_enter", "band_exit"]
HELPER = Path(__file__).with_name("research_kill.py")


@pytest.fixture(scope="module")
def frames():
    import feeds

    return {"yahoo:AAPL:1d": feeds.load_embedded("yahoo:AAPL:1d")}


@pytest.fixture(scope="module")
def uninterrupted(frames, tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("uninterrupted")
    research(parse_spec(SPEC), frames, out, SerialExecutor(), log=lambda s: None)
    return out


def _killed(out, point: str, k: int, engine: str = "serial") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "S4_TEST_SPEC": json.dumps(SPEC),
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, str(HELPER), str(out), point, str(k), engine],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    return proc


def _rows(out) -> pd.DataFrame:
    """Every trial row on disk (the one file per trial, written as each finishes)."""
    from s4_strategies.training.research.store import ResultStore

    rows = ResultStore(out, lock=False).rows()
    return rows.sort_values("trial_id")[KEYS].reset_index(drop=True) if len(rows) else rows


def _report(out) -> tuple[str, dict]:
    md = (Path(out) / "report.md").read_text().splitlines()
    md = [line for line in md if not line.startswith("Run: ")]  # wall times differ
    return "\n".join(md), json.loads((Path(out) / "report.json").read_text())["reports"]


def _running(out) -> list:
    import optuna

    from s4_strategies.training.research.store import ResultStore

    with ResultStore(out) as store:
        storage = store.optuna_storage()
        return [t for s in optuna.get_all_study_summaries(storage)
                for t in optuna.load_study(study_name=s.study_name, storage=storage).trials
                if t.state == optuna.trial.TrialState.RUNNING]


def _crashed(monkeypatch, frames, out, point: str, k: int) -> None:
    """The driver dies at ``point`` in this process (``research_kill.Crash``)."""
    from research_kill import Crash, arm

    def die():
        raise Crash(point)

    with monkeypatch.context() as m:
        job = arm(m.setattr, point, k, die)["trial"]
        with pytest.raises(Crash):
            research(parse_spec(SPEC), frames, out, SerialExecutor(job), log=lambda s: None)


def test_kill_9_at_any_point_then_a_rerun_is_the_uninterrupted_run(uninterrupted, frames,
                                                                   tmp_path, monkeypatch):
    out = tmp_path / "run"
    _crashed(monkeypatch, frames, out, "asking", 2)  # a proposal recorded, half written
    assert len(_rows(out)) == 1 and len(_running(out)) == 1
    _killed(out, "trial", 2)  # kill -9 with two results on disk and the third trial running
    assert len(_rows(out)) == 2 and len(_running(out)) == 1
    _crashed(monkeypatch, frames, out, "saved", 1)  # a result on disk, the study not told
    _crashed(monkeypatch, frames, out, "report", 1)  # every trial done, the report not
    assert not _running(out)
    res = research(parse_spec(SPEC), frames, out, SerialExecutor(), log=lambda s: None)
    assert res["counts"]["ran"] == 0 and res["counts"]["complete"]
    pd.testing.assert_frame_equal(_rows(out), _rows(uninterrupted))
    assert len(_rows(out)) == N_TRIALS and _rows(out)["status"].eq("ok").all()
    md, reports = _report(out)
    assert (md, reports) == _report(uninterrupted)
    assert f"{N_TRIALS} of {N_TRIALS} trials finished (complete)" in md
    assert not list(out.rglob("*.tmp"))


def test_the_report_counts_what_the_spec_asks_for(frames, tmp_path):
    res = research(parse_spec(SPEC), frames, tmp_path, SerialExecutor(), log=lambda s: None,
                   max_trials=2)
    assert not res["counts"]["complete"] and res["counts"]["finished"] == 2
    assert f"2 of {N_TRIALS} trials finished (**incomplete**" in res["markdown"]
    (tmp_path / "trials" / "stale.parquet").write_bytes(
        (tmp_path / "trials" / os.listdir(tmp_path / "trials")[0]).read_bytes())
    again = research(parse_spec(SPEC), frames, tmp_path, SerialExecutor(),
                     log=lambda s: None, max_trials=1)  # a copied row is not a trial more
    assert again["counts"]["finished"] == 3 and not again["counts"]["complete"]


def test_a_second_driver_on_the_same_out_is_refused(tmp_path):
    from s4_strategies.training.research.store import ResultStore, StoreBusy

    with ResultStore(tmp_path):
        with pytest.raises(StoreBusy, match="another s4trade research is working"):
            ResultStore(tmp_path)


@pytest.mark.slow
@pytest.mark.enable_socket
@pytest.mark.allow_hosts(["127.0.0.1"])
def test_a_local_ray_dies_with_its_driver_even_by_kill_9():
    """Ray's fate sharing stops its daemons with the driver but leaves its agents running;
    the reaper leaves nothing of the Ray that driver started."""
    import ray

    from s4_strategies.training.research.reaper import ray_processes

    code = ("import time, ray; from s4_strategies.training.research.engine import ray_init; "
            "ray_init(None, 1); ray.get(ray.remote(lambda: 1).remote()); "
            "print(ray._private.worker._global_node.get_session_dir_path(), flush=True); "
            "time.sleep(300)")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    programs = (str(Path(ray.__file__).parent), os.path.realpath(sys.executable))
    try:
        session = os.path.realpath(driver.stdout.readline().strip())

        def left():  # the processes of the Ray that driver started
            return ray_processes(lambda token: token.startswith(f"{driver.pid}-"), session,
                                 programs, skip={driver.pid, os.getpid()})

        assert len(left()) >= 4  # gcs, raylet, agents, a worker
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        deadline = time.time() + 30
        while left() and time.time() < deadline:
            time.sleep(0.25)
        assert not left()
    finally:
        driver.kill()
        driver.wait()
