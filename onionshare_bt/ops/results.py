"""What operations return: JSON-ready dicts, typed.

Each result is a ``TypedDict``, so the shape is declared here and checked by a type checker
while the value stays the plain dict the control socket sends (``obt … --json`` prints it
as it comes). Results that a part builds itself (a share, a download, a trust walk, a
release) are typed by that part's dict and named here, so every operation has a result
type.
"""

from __future__ import annotations

from typing import Any, TypedDict

#: results built by the parts themselves (see their docstrings for the fields)
ShareInfo = dict[str, Any]  # torrents.share / describe_share
DownloadInfo = dict[str, Any]  # torrents.get / describe_download
Removed = dict[str, Any]  # torrents.remove / withdraw_onion
TrustChange = dict[str, Any]  # trust.service add / remove
TrustGraph = dict[str, Any]  # trust.service graph
SearchResults = dict[str, Any]  # trust.service search
PublishInfo = dict[str, Any]  # trust.service publish
MirrorInfo = dict[str, Any]  # mirror.service add / remove / list rows
ReleaseInfo = dict[str, Any]  # release.service publish / find / list rows
UpdateInfo = dict[str, Any]  # release.service check
CastInfo = dict[str, Any]  # cast.service: a broadcast's or a listening's describe()


class TorrentInfo(TypedDict, total=False):
    """One torrent as ``obt list`` shows it (``list``, ``torrent``)."""

    id: str
    role: str
    name: str
    state: str
    size: int
    uri: str
    path: str
    error: str | None
    onions: list[str]
    open: bool
    progress: float
    done: int
    wanted: int
    rate_down: int
    rate_up: int
    peers: int
    payload_down: int
    payload_up: int
    failed: int
    stream: dict
    announce_error: str | None
    trackers: list
    reason: str | None


class SharePreviewInfo(TypedDict):
    path: str
    size: int
    files: list[dict]
    hidden_skipped: int


class UiLinkInfo(TypedDict, total=False):
    url: str
    onion_url: str
    expires: float
    client_auth: dict  # private_key (base32, for Tor Browser), auth_private (a file's line)


class TorrentFileInfo(TypedDict):
    id: str
    name: str
    role: str
    open: bool
    torrent: str  # base64


class PeersInfo(TypedDict):
    id: str
    paths: list[dict]
    engine_peers: list[dict]


class PlayInfo(TypedDict, total=False):
    id: str
    name: str
    state: str
    url: str
    file: dict
    files: list[dict]


class OpenInfo(TypedDict):
    id: str
    name: str
    uri: str
    open: bool


class PauseInfo(TypedDict):
    """``obt pause`` and ``obt resume``: the download's state after it."""

    id: str
    name: str
    state: str


class StatusInfo(TypedDict, total=False):
    """``obt node status``; the node's vital signs (``Node.health``) are merged in."""

    version: str
    pid: int
    uptime: float
    home: str
    network: str
    #: pid, bootstrap, socks, restarts (by the watchdog), renewed_onions (published afresh
    #: since tor started, their descriptors lost: tor/rescue.py), uploads_behind (descriptor
    #: uploads unanswered for over a minute: renewals wait meanwhile)
    tor: dict
    engine: dict
    onions: int
    #: how many of them this tor has published since it started (tor/uploads.py)
    published: int
    #: every onion by where it stands: published, uploading (a descriptor stored, its
    #: first round of uploads under way), unstored (none stored yet), queued (waiting for
    #: its turn to be given to tor, tor/publisher.py)
    publishing: dict
    torrents: int
    bridges: dict
    loop_lag_max_ms: float
    loop_lag_recent_ms: float
    resources: dict
    silent_closed: int


class StopInfo(TypedDict):
    stopping: bool
    pid: int


class RelayStatusInfo(TypedDict):
    enabled: bool
    fingerprint: str | None
    nickname: str | None
    relayed_today: int
    relayed_total: int
    rate_limit: int | None
    burst_limit: int | None
    in_consensus: bool
    flags: list[str]
    restarts: int
    pid: int | None
    or_address: str | None
    history: list[list[float]]  # [unix time, bytes/s relayed over the step before]


class RatioInfo(TypedDict, total=False):
    """The allowance (``relay.core.Allowance.as_dict``) plus these."""

    allowance: int
    free_base: int
    ratio: float
    relayed: int
    used: int
    remaining: int
    exhausted: bool
    relay: bool
    gated: list[str]


class NodeIdInfo(TypedDict):
    onion: str
    public_uri: str


class PublishedInfo(TypedDict):
    public_uri: str
    items: list[dict]


class CatalogueInfo(TypedDict):
    node: str
    items: list[dict]


class TrustListInfo(TypedDict):
    depth: int
    trusted: list[str]


class TrustDepthInfo(TypedDict):
    depth: int
