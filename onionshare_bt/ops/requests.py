"""Every operation's name and typed request: the one table shared by client and server.

A request is a frozen dataclass whose class attribute ``op`` is the operation's name on the
control socket. The server turns ``(op, args)`` into a request with :func:`parse` (the one
place arguments are checked); a client builds a request and sends :meth:`Request.args`.
This module imports nothing of the node, so the CLI loads it without libtorrent or stem.

Arguments are checked in two steps, both :class:`~onionshare_bt.errors.UsageError`
"bad arguments for <op>: …": :func:`parse` checks that ``Request(**args)`` binds (no
missing or unexpected field); then every request, however it was made, checks at
construction that each value has its field's JSON type (``bool`` is not an ``int`` here,
an ``int`` is a ``float``) and runs its own :meth:`Request.check`, which refuses values no
operation can take. A ``TypeError`` raised later, inside the operation, is a bug, not a
usage error; this split is what lets the server tell the two apart.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from typing import ClassVar

from ..errors import UsageError
from ..onion import MAX_ONIONS


@dataclasses.dataclass(frozen=True)
class Request:
    """One operation's arguments. Subclasses set ``op``."""

    op: ClassVar[str] = ""
    #: fields sent only when they differ from their default (a node that predates them
    #: refuses them, loudly, so they are never sent for nothing)
    sent_when_set: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        # every caller's request is checked, built from JSON (parse) or in the node's process
        _check_types(self)
        self.check()

    def check(self) -> None:
        """Refuse values that have the right type but no meaning (override)."""

    def args(self) -> dict:
        """The JSON arguments that carry this request over the control socket."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in self.sent_when_set and value == field.default:
                continue
            out[field.name] = value
        return out


# -- torrents ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Share(Request):
    op = "share"
    sent_when_set = ("include_hidden", "open", "scrub", "no_wait")
    path: str
    onions: int | None = None
    include_hidden: bool = False
    open: bool | None = None
    scrub: bool = False
    #: answer once the share is made, before tor has uploaded its onions' descriptors
    no_wait: bool = False

    def check(self) -> None:
        if self.onions is not None and not 1 <= self.onions <= MAX_ONIONS:
            raise UsageError(f"a share is served on 1 to {MAX_ONIONS} onions, not {self.onions}")


@dataclasses.dataclass(frozen=True)
class SharePreview(Request):
    """What sharing ``path`` would publish (its files and size), before anything is shared."""

    op = "share_preview"
    path: str
    include_hidden: bool = False


@dataclasses.dataclass(frozen=True)
class Get(Request):
    op = "get"
    uri: str
    target: str
    timeout: float | None = None


@dataclasses.dataclass(frozen=True)
class ListTorrents(Request):
    op = "list"


@dataclasses.dataclass(frozen=True)
class Torrent(Request):
    op = "torrent"
    id: str


@dataclasses.dataclass(frozen=True)
class TorrentFile(Request):
    op = "torrent_file"
    id: str


@dataclasses.dataclass(frozen=True)
class Peers(Request):
    op = "peers"
    id: str


@dataclasses.dataclass(frozen=True)
class Play(Request):
    op = "play"
    id: str
    file: str | None = None


@dataclasses.dataclass(frozen=True)
class SetOpen(Request):
    op = "open"
    id: str
    open: bool


@dataclasses.dataclass(frozen=True)
class Unshare(Request):
    op = "unshare"
    sent_when_set = ("onion",)
    id: str
    onion: str | None = None


@dataclasses.dataclass(frozen=True)
class Remove(Request):
    op = "remove"
    id: str
    delete_data: bool = False


@dataclasses.dataclass(frozen=True)
class Pause(Request):
    """Pause a download: libtorrent stops it, and it stays paused across node restarts."""

    op = "pause"
    id: str


@dataclasses.dataclass(frozen=True)
class Resume(Request):
    """Resume a paused download: it downloads and announces again."""

    op = "resume"
    id: str


# -- the node ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Status(Request):
    op = "status"


@dataclasses.dataclass(frozen=True)
class Stop(Request):
    op = "stop"


@dataclasses.dataclass(frozen=True)
class RelayStatus(Request):
    op = "relay_status"


@dataclasses.dataclass(frozen=True)
class Ratio(Request):
    op = "ratio"


@dataclasses.dataclass(frozen=True)
class Settings(Request):
    """The settings the node runs with (config.toml over the defaults), and what its
    config.toml sets now (``file``: it differs once changed, until the node restarts)."""

    op = "settings"


@dataclasses.dataclass(frozen=True)
class SettingsSet(Request):
    """Write settings (name -> text) into config.toml, for the node's next start; only
    those the web UI may change (:data:`onionshare_bt.configfile.UI_KEYS`)."""

    op = "settings_set"
    values: dict

    def check(self) -> None:
        if not self.values:
            raise UsageError("no setting to change")
        if not all(isinstance(k, str) and isinstance(v, (str, int, float, bool))
                   for k, v in self.values.items()):
            raise UsageError("settings are names with text, number or true/false values")


@dataclasses.dataclass(frozen=True)
class UiLink(Request):
    """A one-time link into the web UI; with ``onion`` the UI is also published on an
    onion service of its own (and stays published until the node stops)."""

    op = "ui_link"
    sent_when_set = ("client_auth",)
    onion: bool = False
    #: publish the onion behind Tor v3 client authorization (implies ``onion``)
    client_auth: bool = False


# -- identity, catalogue, trust ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NodeId(Request):
    op = "node_id"


@dataclasses.dataclass(frozen=True)
class Publish(Request):
    op = "publish"
    sent_when_set = ("description",)
    id: str
    public: bool
    #: what the public catalogue says of the share (None: as before)
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class Published(Request):
    op = "published"


@dataclasses.dataclass(frozen=True)
class Catalogue(Request):
    op = "catalogue"
    uri: str


@dataclasses.dataclass(frozen=True)
class TrustAdd(Request):
    op = "trust_add"
    onion: str


@dataclasses.dataclass(frozen=True)
class TrustRemove(Request):
    op = "trust_remove"
    onion: str


@dataclasses.dataclass(frozen=True)
class TrustList(Request):
    op = "trust_list"


@dataclasses.dataclass(frozen=True)
class TrustDepth(Request):
    """Show the trust depth, or set it when ``depth`` is given."""

    op = "trust_depth"
    depth: int | None = None


@dataclasses.dataclass(frozen=True)
class TrustGraph(Request):
    op = "trust_graph"


@dataclasses.dataclass(frozen=True)
class Search(Request):
    op = "search"
    terms: list

    def check(self) -> None:
        if not self.terms or not all(isinstance(t, str) and t.strip() for t in self.terms):
            raise UsageError("search needs at least one term")


# -- mirrors -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MirrorAdd(Request):
    op = "mirror_add"
    onion: str
    follow: bool = False


@dataclasses.dataclass(frozen=True)
class MirrorRemove(Request):
    op = "mirror_remove"
    onion: str


@dataclasses.dataclass(frozen=True)
class MirrorList(Request):
    op = "mirror_list"


# -- releases ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ReleasePublish(Request):
    op = "release_publish"
    folder: str


@dataclasses.dataclass(frozen=True)
class ReleaseList(Request):
    op = "release_list"


@dataclasses.dataclass(frozen=True)
class ReleaseShow(Request):
    op = "release_show"
    id: str


@dataclasses.dataclass(frozen=True)
class UpdateCheck(Request):
    op = "update_check"


# -- live broadcasts -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Cast(Request):
    """Broadcast ``source`` live: a file played in real time, or a capture device read
    through ffmpeg's ``input_format`` (alsa, pulse, ...)."""

    op = "cast"
    sent_when_set = ("input_format", "public", "name", "description")
    source: str
    bitrate: int = 64
    fanout: int = 2
    input_format: str | None = None
    #: listed in the node's public catalogue while live, as ``name`` with ``description``
    public: bool = False
    name: str | None = None
    description: str | None = None

    def check(self) -> None:
        if not 16 <= self.bitrate <= 256:
            raise UsageError(f"a broadcast's bitrate is 16 to 256 kbit/s, not {self.bitrate}")
        if not 1 <= self.fanout <= 8:
            raise UsageError(f"a broadcaster serves 1 to 8 listeners itself, not {self.fanout}")
        if self.input_format is not None and not self.input_format.isidentifier():
            raise UsageError(f"not an ffmpeg input format: {self.input_format!r}")


@dataclasses.dataclass(frozen=True)
class CastStop(Request):
    op = "cast_stop"
    id: str


@dataclasses.dataclass(frozen=True)
class Listen(Request):
    """Listen to the broadcast at ``uri``, relaying it to up to ``fanout`` listeners."""

    op = "listen"
    uri: str
    fanout: int = 2
    out: str | None = None

    def check(self) -> None:
        if not 0 <= self.fanout <= 8:
            raise UsageError(f"a listener relays to 0 to 8 listeners, not {self.fanout}")


@dataclasses.dataclass(frozen=True)
class ListenStop(Request):
    op = "listen_stop"
    id: str


@dataclasses.dataclass(frozen=True)
class Casts(Request):
    op = "casts"


#: every operation by name: the control socket's whole vocabulary
REQUESTS: dict[str, type[Request]] = {
    cls.op: cls for cls in (
        Share, SharePreview, Get, ListTorrents, Torrent, TorrentFile, Peers, Play, SetOpen,
        Unshare, Remove, Pause, Resume,
        Status, Stop, RelayStatus, Ratio, Settings, SettingsSet, UiLink,
        NodeId, Publish, Published, Catalogue,
        TrustAdd, TrustRemove, TrustList, TrustDepth, TrustGraph, Search,
        MirrorAdd, MirrorRemove, MirrorList,
        ReleasePublish, ReleaseList, ReleaseShow, UpdateCheck,
        Cast, CastStop, Listen, ListenStop, Casts,
    )
}


def parse(op: str, args: dict) -> Request:
    """The request ``op`` with ``args``, checked.

    :raises UsageError: an unknown operation, or arguments it cannot take
    """
    cls = REQUESTS.get(op)
    if cls is None:
        raise UsageError(f"unknown control operation {op!r}")
    try:
        inspect.signature(cls).bind(**args)
    except TypeError as exc:
        raise UsageError(f"bad arguments for {op}: {_clip(exc)}") from None
    return cls(**args)  # checks the types and values (Request.__post_init__)


# -- argument checks -----------------------------------------------------------------------
def _check_types(request: Request) -> None:
    """Check that each field's value has its annotated JSON type.

    Only annotations made of ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict`` and
    ``None`` (alone or in a union) are checked.

    :raises UsageError: "bad arguments for <op>: ..."
    """
    hints = _hints(type(request))
    for field in dataclasses.fields(request):
        value = getattr(request, field.name)
        accepted = _json_types(hints.get(field.name))
        if accepted and not _is_a(value, accepted):
            names = " or ".join(_JSON_NAMES[t] for t in accepted)
            raise UsageError(
                f"bad arguments for {request.op}: {field.name} must be {names}, "
                f"not {_JSON_NAMES.get(type(value), type(value).__name__)}"
            )


@functools.cache
def _hints(cls: type) -> dict:
    return typing.get_type_hints(cls)


_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def _json_types(hint: object) -> tuple[type, ...] | None:
    if hint is None:
        return None
    is_union = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    options = typing.get_args(hint) if is_union else (hint,)
    options = tuple(typing.get_origin(o) or o for o in options)
    return options if all(o in _JSON_NAMES for o in options) else None


def _is_a(value: object, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in accepted
    if isinstance(value, int) and float in accepted:
        return True
    return isinstance(value, accepted)


def _clip(exc: BaseException, size: int = 200) -> str:
    text = str(exc)
    return text if len(text) <= size else text[:size] + "…"
