"""A tor that an earlier run of this node left behind on its data dir.

The client writes its tor's pid to :data:`STALE_PID_FILE`; a node killed with ``-9``
leaves that tor running until it notices its owner is gone, holding the data dir's lock.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

__all__ = ["STALE_PID_FILE", "reap_stale"]

log = logging.getLogger(__name__)

STALE_PID_FILE = "tor.pid"


def reap_stale(data_dir: Path, grace: float = 5.0) -> None:
    """Stop a tor an earlier run of ours left on this data dir (its owner was killed).

    tor notices a dead owner only after a while and holds the data dir's lock until then.
    Only a process that is tor *and* runs our torrc in this data dir is signalled.
    """
    pid_file = data_dir / STALE_PID_FILE
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if not cmdline or Path(cmdline[0].decode()).name != "tor" or str(data_dir / "torrc").encode() not in cmdline:
        return
    log.warning("stopping tor %d left over from an earlier run", pid)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
