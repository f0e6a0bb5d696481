"""OnionShare, the tool users would pick instead: ``onionshare-cli`` serving the same kind
of file over the same private network, fetched with ``curl --socks5-hostname``.

onionshare-cli is installed from PyPI into a venv of its own (``bench/.venv-onionshare``,
not the project's). Its settings file points it at an existing tor's control port
(``connection_type = control_port``; stem authenticates with that tor's cookie), because its
"bundled" tor would join the public network. It serves in public mode (no client auth, so
curl needs nothing but the URL) and keeps serving after a download
(``--no-autostop-sharing``). curl sends no ``Accept-Encoding``, so the file travels as is.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from onionshare_bt.tor.client import TorClient

from .procs import BenchError, kill_pid, log, send_signal

PACKAGE = "onionshare-cli>=2.6"
VENV = Path(__file__).resolve().parent / ".venv-onionshare"
START_TIMEOUT = 180.0
_URL = re.compile(r"http://[a-z2-7]{56}\.onion")


def ensure_installed() -> Path:
    """Create the separate venv and install onionshare-cli into it, once.

    :returns: the onionshare-cli executable
    :raises BenchError: if pip fails
    """
    exe = VENV / "bin" / "onionshare-cli"
    if exe.exists():
        return exe
    log.info("installing %s into %s", PACKAGE, VENV)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", PACKAGE], check=True,
                       timeout=900)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"cannot install {PACKAGE}: {exc}") from exc
    return exe


def version() -> str:
    """The installed onionshare-cli version."""
    out = subprocess.run([str(VENV / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('onionshare-cli'))"],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def _settings(tor: TorClient, workdir: Path) -> Path:
    """Write onionshare's settings: use **tor**'s control port."""
    text = (tor.data_dir / "control_port").read_text().strip()
    host, _, port = text.removeprefix("PORT=").rpartition(":")
    path = workdir / "onionshare.json"
    path.write_text(json.dumps({"connection_type": "control_port",
                                "control_port_address": host, "control_port_port": int(port),
                                "auth_type": "no_auth"}))
    return path


class OnionShare:
    """One onionshare-cli process serving one file (async context manager).

    :param tor: the tor it publishes its onion service through
    :param path: the file to serve
    :param workdir: its HOME (settings, logs)
    """

    def __init__(self, tor: TorClient, path: Path, workdir: Path) -> None:
        self.tor, self.path, self.workdir = tor, path, workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.start_s = 0.0

    async def __aenter__(self) -> OnionShare:
        exe = ensure_installed()
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = _settings(self.tor, self.workdir)
        started = time.monotonic()
        env = {"HOME": str(self.workdir), "XDG_CONFIG_HOME": str(self.workdir / "config"),
               "PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "PYTHONUNBUFFERED": "1"}
        self.proc = await asyncio.create_subprocess_exec(
            str(exe), "--config", str(settings), "--public", "--no-autostop-sharing",
            str(self.path), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.url = await asyncio.wait_for(self._read_url(), START_TIMEOUT)
        except (TimeoutError, BenchError):
            await self.__aexit__()
            raise
        self.start_s = time.monotonic() - started
        return self

    async def _read_url(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        seen = []
        while line := await self.proc.stdout.readline():
            text = line.decode(errors="replace")
            seen.append(text)
            match = _URL.search(text)
            if match:
                asyncio.ensure_future(self._drain())
                return match.group(0)
        raise BenchError("onionshare-cli exited without a URL:\n" + "".join(seen[-10:]))

    async def _drain(self) -> None:
        """Keep reading its output so it never blocks on a full pipe."""
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def __aexit__(self, *exc_info: object) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        send_signal(self.proc.pid)  # Ctrl-C: it withdraws its onion service and exits
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            await asyncio.to_thread(kill_pid, self.proc.pid)


async def curl_fetch(url: str, socks: tuple[str, int], out: Path, size: int,
                     timeout: float) -> dict:
    """Download ``url/download`` through tor's SOCKS port with curl, retrying while the
    descriptor is not yet found.

    :returns: ``wall_s``, ``ttfb_s`` (curl's time_starttransfer), ``transfer_s``, ``rate``
      (bytes/s after the first byte), ``wall_rate``, ``attempts``
    """
    curl = shutil.which("curl")
    if curl is None:
        raise BenchError("curl is missing (apt-get install curl)")
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        left = deadline - time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            curl, "--silent", "--show-error", "--fail", "--max-time", str(int(max(left, 1))),
            "--socks5-hostname", f"{socks[0]}:{socks[1]}", "-o", str(out),
            "-w", "%{time_starttransfer} %{time_total} %{size_download}", f"{url}/download",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await proc.communicate()
        if proc.returncode == 0:
            break
        if proc.returncode != 97 or time.monotonic() + 1 > deadline:  # 97: SOCKS failed
            raise BenchError(f"curl exited {proc.returncode}: {stderr.decode().strip()}")
        await asyncio.sleep(0.5)
    ttfb, total, got = stdout.decode().split()
    if int(float(got)) != size:
        raise BenchError(f"curl got {got} bytes, expected {size}")
    ttfb_s, wall_s = float(ttfb), float(total)
    return {"wall_s": wall_s, "ttfb_s": ttfb_s, "transfer_s": wall_s - ttfb_s,
            "rate": size / max(wall_s - ttfb_s, 1e-6), "wall_rate": size / wall_s,
            "attempts": attempts}
