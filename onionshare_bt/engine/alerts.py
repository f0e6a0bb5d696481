"""libtorrent alerts copied into our own :class:`Event`.

:class:`onionshare_bt.engine.session.Engine` drains the alerts (``set_alert_fd`` on a
socketpair watched by the event loop); here each is tied to a torrent the engine holds
(:func:`torrent_id_of`) and its fields are copied out (:func:`event_of`), so no libtorrent
object leaves the engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Container

import libtorrent as lt


@dataclasses.dataclass(frozen=True)
class Event:
    """One libtorrent alert, copied into plain fields."""

    kind: str  # finished, moved, move_failed, error, resume, resume_failed, file_error
    torrent_id: str
    message: str = ""
    data: bytes | None = None


def torrent_id_of(alert, held: Container[str]) -> str | None:
    """The id of the torrent an alert is about, if it is one of ``held``; else None."""
    handle = getattr(alert, "handle", None)
    if handle is None or not handle.is_valid():
        return None
    hashes = handle.info_hashes()
    raw = hashes.v1.to_bytes() if hashes.has_v1() else hashes.v2.to_bytes()[:20]
    return raw.hex() if raw.hex() in held else None


def event_of(alert, tid: str) -> Event | None:
    """The :class:`Event` for an alert about torrent ``tid``; None for an alert we ignore."""
    if isinstance(alert, lt.torrent_finished_alert):
        return Event("finished", tid)
    if isinstance(alert, lt.storage_moved_alert):
        return Event("moved", tid, alert.storage_path())
    if isinstance(alert, lt.storage_moved_failed_alert):
        return Event("move_failed", tid, f"{alert.file_path()}: {alert.error.message()}")
    if isinstance(alert, lt.save_resume_data_alert):
        return Event("resume", tid, data=bytes(lt.write_resume_data_buf(alert.params)))
    if isinstance(alert, lt.save_resume_data_failed_alert):
        return Event("resume_failed", tid, alert.message())
    if isinstance(alert, lt.file_error_alert):
        return Event("file_error", tid, f"{alert.filename()}: {alert.error.message()}")
    if isinstance(alert, lt.torrent_error_alert):
        return Event("error", tid, alert.message())
    return None
