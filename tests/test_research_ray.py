"""Research on Ray: a local Ray bound to 127.0.0.1 gives the serial run's numbers and
resumes; ``--address`` joins a head started separately (``ray start --head``) on loopback.
Only loopback sockets are allowed here; the rest of the suite keeps them disabled."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_research_run import TINY  # tests/ is on sys.path

from s4_strategies.training.research import parse_spec
from s4_strategies.training.research.engine import RayExecutor, SerialExecutor
from s4_strategies.training.research.run import research

pytestmark = [pytest.mark.slow, pytest.mark.enable_socket,
              pytest.mark.allow_hosts(["127.0.0.1"])]
KEYS = ["trial_id", "val_log_loss", "test_log_loss", "test_ic_5", "test_net_sharpe"]
ONE_FOLD = {**TINY, "walk_forward": {**TINY["walk_forward"], "test_end": "2022-12-31"}}


@pytest.fixture(autouse=True)
def _no_ambient_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)  # restored after each test
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="module")
def frames():
    import feeds

    return {"yahoo:AAPL:1d": feeds.load_embedded("yahoo:AAPL:1d")}


def _rows(out) -> pd.DataFrame:
    return pd.read_parquet(Path(out) / "trials.parquet").sort_values("trial_id")[KEYS] \
        .reset_index(drop=True)


def test_local_ray_matches_the_serial_run_and_resumes(frames, tmp_path):
    import torch

    torch.set_num_threads(1)
    spec = parse_spec(ONE_FOLD)
    research(spec, frames, tmp_path / "serial", SerialExecutor(), log=lambda s: None)
    ex = RayExecutor(num_cpus=2)
    try:
        assert ex.workers == 2
        import ray

        assert all(n["NodeManagerAddress"] == "127.0.0.1" for n in ray.nodes())
        res = research(spec, frames, tmp_path / "ray", ex, log=lambda s: None)
        assert res["counts"]["ran"] == res["counts"]["total"] == 4
        again = research(spec, frames, tmp_path / "ray", ex, log=lambda s: None)
        assert again["counts"]["ran"] == 0
    finally:
        ex.close()
    import ray

    assert not ray.is_initialized()
    pd.testing.assert_frame_equal(_rows(tmp_path / "ray"), _rows(tmp_path / "serial"))


def test_research_joins_a_head_started_separately(tmp_path):
    """``ray start --head`` on 127.0.0.1 in another process; ``s4trade research --address``
    joins it, runs there, and leaves it running."""
    import json

    from s4_strategies.apps.cli import main
    from s4_strategies.training.research.head import loopback_head

    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({**ONE_FOLD, "models": ONE_FOLD["models"][1:]}))
    with loopback_head(num_cpus=1) as (address, head):
        rc = main(["research", "--spec", str(spec_path), "--out", str(tmp_path / "out"),
                   "--address", address])
        assert rc == 0
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        assert report["executor"] == "ray" and report["workers"] == 1
        assert report["counts"]["ran"] == 1 and report["counts"]["complete"]
        assert head.poll() is None  # the cluster is still up: the run only disconnected
