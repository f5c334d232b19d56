"""A Ray head in a process of its own on 127.0.0.1, as ``ray start --head`` starts one on a
cluster's first machine: what the tests and the benchmark join with ``--address``."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def loopback_head(num_cpus: int = 1, timeout: float = 90.0):
    """``ray start --head --block`` on 127.0.0.1 (single node, usage stats off); yields its
    address ``"127.0.0.1:PORT"`` once it accepts connections, and stops it on exit."""
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's unix socket paths
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # one node: listen on loopback only
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={port}", f"--num-cpus={num_cpus}",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={tmp}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if head.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"ray start --head did not come up (exit {head.poll()})")
            time.sleep(0.5)
        time.sleep(3)  # the GCS port opens before the head's raylet registers
        yield f"127.0.0.1:{port}", head
    finally:
        head.terminate()
        try:
            head.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            head.kill()
        shutil.rmtree(tmp, ignore_errors=True)
