"""Ties a local Ray to the driver that started it: run as a script by ``engine.ray_init``.

    python reaper.py TOKEN DRIVER_PID RAY_DIR

It blocks reading its standard input, a pipe whose other end only the driver holds; the
driver writes one line, the Ray session folder, once Ray is up. The pipe reaches end of
file when the driver exits or is killed (the kernel closes a dead process's files, even
after ``kill -9``); the reaper then ends every process of that Ray: those whose environment
carries ``S4_RAY_OWNER=TOKEN`` (``ray.init`` ran with it set) and those running Python or a
Ray binary with a file open in the session folder (Ray's agents and workers, which rewrite
their environment with their process title): ``SIGTERM``, then ``SIGKILL`` for those still
there after a grace period. Ray's own fate sharing stops its daemons with the driver but
leaves its dashboard and runtime-env agents running; this leaves nothing.

Only the standard library (``/proc`` on Linux; ``psutil``, which Ray ships, elsewhere): it
starts in milliseconds.
"""

from __future__ import annotations

import os
import signal
import sys
import time

ENV_KEY = "S4_RAY_OWNER"
GRACE_S = 2.0


def _pids() -> list[int]:
    if os.path.isdir("/proc"):
        return [int(n) for n in os.listdir("/proc") if n.isdigit()]
    import psutil

    return psutil.pids()


def _token(pid: int) -> str | None:
    """The process's ``S4_RAY_OWNER``, ``None`` when absent or unreadable."""
    if os.path.isdir("/proc"):
        key = ENV_KEY.encode() + b"="
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                env = fh.read().split(b"\0")
        except OSError:
            return None
        value = next((e[len(key):] for e in env if e.startswith(key)), None)
        return None if value is None else value.decode(errors="replace")
    import psutil

    try:
        return psutil.Process(pid).environ().get(ENV_KEY)
    except (psutil.Error, OSError):
        return None


def _in_session(pid: int, session: str, programs: tuple[str, ...]) -> bool:
    """Runs one of ``programs`` (a path or a folder prefix) with a file open in ``session``."""
    try:
        if os.path.isdir("/proc"):
            exe = os.readlink(f"/proc/{pid}/exe")
            if not exe.startswith(programs):
                return False
            fds = f"/proc/{pid}/fd"
            return any(os.readlink(os.path.join(fds, fd)).startswith(session)
                       for fd in os.listdir(fds))
        import psutil

        p = psutil.Process(pid)
        return p.exe().startswith(programs) and any(
            f.path.startswith(session) for f in p.open_files())
    except Exception:  # gone, or another user's
        return False


def marked(match, skip=()) -> list[int]:
    """Pids of the processes whose ``S4_RAY_OWNER`` satisfies ``match(value)``."""
    out = []
    for pid in _pids():
        if pid not in skip:
            value = _token(pid)
            if value is not None and match(value):
                out.append(pid)
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not os.path.isdir("/proc")


def ray_processes(match, session: str | None = None, programs: tuple[str, ...] = (),
                  skip=()) -> set[int]:
    """Pids of a Ray's processes: ``S4_RAY_OWNER`` satisfying ``match``, or one of
    ``programs`` with a file open in the ``session`` folder."""
    pids = set(marked(match, skip))
    if session and programs:
        session = session.rstrip(os.sep) + os.sep
        pids |= {p for p in _pids() if p not in skip and _in_session(p, session, programs)}
    return pids


def reap(token: str, session: str | None = None, programs: tuple[str, ...] = (),
         skip=(), grace: float = GRACE_S) -> list[int]:
    """End the processes of the Ray with ``token`` (and ``session`` folder); their pids."""
    pids = ray_processes(lambda v: v == token, session, programs, skip)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return sorted(pids)


def main(argv: list[str]) -> int:
    token, driver, ray_dir = argv[1], int(argv[2]), argv[3]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the driver
    session = None
    for line in sys.stdin:  # returns at end of file: the driver is gone or done
        session = line.strip() or session
    time.sleep(0.2)  # let a driver that exits cleanly finish its own ray.shutdown()
    reap(token, session, (ray_dir, os.path.realpath(sys.executable)),
         {os.getpid(), driver})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
