"""The CLI's side of the control socket: find (or start) the node, send it requests."""

from __future__ import annotations

import base64
from pathlib import Path

from .. import control, daemon
from ..config import Config
from ..errors import BadPath
from ..ops import requests as rq
from .render import err


async def node(state) -> Config:
    """The configuration of a running node: one is started in the background if none
    answers (and the user told so)."""
    cfg = state.config
    if await daemon.ensure_running(cfg, say=err):
        err(f"started a node in the background (home {cfg.home})")
    return cfg


async def send(cfg: Config, request: rq.Request, timeout: float = 30.0):
    """Run one operation in the node; its result."""
    return await control.send(cfg.socket_path, request, timeout=timeout)


async def write_torrent(cfg: Config, torrent_id: str, path: str) -> None:
    """Write a torrent's .torrent (a share's names its trackers) to ``path``."""
    info = await send(cfg, rq.TorrentFile(id=torrent_id))
    data = base64.b64decode(info["torrent"])
    try:
        Path(path).expanduser().write_bytes(data)
    except OSError as exc:
        raise BadPath(f"cannot write the .torrent to {path}: {exc.strerror or exc}") from exc
    err(f"wrote the .torrent to {path} ({len(data)} bytes)")
