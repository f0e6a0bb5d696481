"""The one error tree of obt, and the exit codes the CLI maps it to.

Every user-facing exception's docstring is its default message; ``hint`` tells the user
what to do next. Foreign exceptions (stem, libtorrent, aiohttp) are translated into these
at the edge of the package that imports them, so nothing above that edge sees them.

::

    ObtError
    ├── UsageError                (2)  bad input the user can fix
    │   ├── BadURI
    │   ├── BadPath
    │   ├── BadOnionAddress
    │   └── MetadataFound             found, and neither --scrub nor --keep-metadata
    ├── TorError                  (3)  our tor process, its controller or SOCKS
    │   ├── TorMissing
    │   ├── TorBootstrapFailed
    │   └── OnionUnreachable
    ├── Timeout                   (4)
    ├── Refused                   (5)  a peer or tracker said no, or answered garbage
    │   ├── NotFound
    │   ├── MalformedReply
    │   └── ReleaseRefused
    ├── NodeError                 (1)  the node daemon
    │   └── NodeNotRunning
    ├── Down                      (1)  a status already printed says it: not running
    ├── TorrentError              (1)  libtorrent said no
    ├── ScrubFailed               (1)  a share's metadata could not be cleaned
    └── StoreError                (1)
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in ``man/obt.1``."""

    OK = 0
    ERROR = 1
    USAGE = 2
    TOR_UNREACHABLE = 3
    TIMEOUT = 4
    REFUSED = 5
    INTERRUPTED = 130


class ObtError(Exception):
    """obt failed."""

    exit_code: ExitCode = ExitCode.ERROR
    hint: str | None = None
    #: machine-readable name, carried over the control API
    kind: str = "error"
    #: the command's output already says it: the CLI prints no message, only exits
    silent: bool = False

    def __init__(self, message: str | None = None, *, hint: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "hint": self.hint}


class UsageError(ObtError):
    """Invalid input."""

    exit_code = ExitCode.USAGE
    kind = "usage"


class BadURI(UsageError):
    """That is not an obt URI."""

    kind = "bad_uri"
    hint = "An obt URI looks like http://<56 characters>.onion/private/<token>."


class BadPath(UsageError):
    """That path cannot be shared."""

    kind = "bad_path"


class BadOnionAddress(UsageError):
    """That is not a valid v3 onion address."""

    kind = "bad_onion"
    hint = "A v3 onion address is 56 base32 characters followed by .onion."


class MetadataFound(UsageError):
    """The files hold identifying metadata; nothing was shared."""

    kind = "metadata_found"
    hint = ("Run it again with --scrub to share cleaned copies (the originals stay as they "
            "are), or with --keep-metadata to share the files as they are.")


class TorError(ObtError):
    """Tor failed."""

    exit_code = ExitCode.TOR_UNREACHABLE
    kind = "tor"


class TorMissing(TorError):
    """The tor binary was not found."""

    kind = "tor_missing"
    hint = "Install it with: apt-get install -y tor  (or set OBT_TOR to its path)."


class TorBootstrapFailed(TorError):
    """Tor did not finish bootstrapping."""

    kind = "tor_bootstrap"
    hint = "Check the network file (--network / OBT_NETWORK) and that its testnet is up."


class OnionUnreachable(TorError):
    """The onion service could not be reached."""

    kind = "onion_unreachable"
    hint = "The node serving it may be offline; try again later."


class Timeout(ObtError):
    """The operation timed out."""

    exit_code = ExitCode.TIMEOUT
    kind = "timeout"


class Refused(ObtError):
    """The peer or tracker refused the request."""

    exit_code = ExitCode.REFUSED
    kind = "refused"


class NotFound(Refused):
    """Nothing is shared at that URI."""

    kind = "not_found"
    hint = "Check the token in the URI; the share may have been withdrawn."


class MalformedReply(Refused):
    """The remote side answered with something that is not valid."""

    kind = "malformed"


class ReleaseRefused(Refused):
    """That obt release is not a valid release signed by a trusted maintainer."""

    kind = "release_refused"


class NodeError(ObtError):
    """The node failed."""

    kind = "node"


class NodeNotRunning(NodeError):
    """No obt node is running."""

    kind = "node_not_running"
    hint = "Start one with: obt node start"


class Down(ObtError):
    """Not running (the status printed says so)."""

    kind = "down"
    silent = True


class TorrentError(ObtError):
    """The torrent engine failed."""

    kind = "torrent"


class ScrubFailed(ObtError):
    """The files' metadata could not be cleaned; nothing was shared."""

    kind = "scrub_failed"


class StoreError(ObtError):
    """The node's state store failed."""

    kind = "store"


class StoreTooNew(StoreError):
    """The node's state database was made by a newer obt; it was left untouched."""

    kind = "store_too_new"
    hint = ("Run the newer obt that wrote it, or point OBT_HOME at another folder to start "
            "a node afresh.")


_KINDS: dict[str, type[ObtError]] = {}


def _collect(cls: type[ObtError]) -> None:
    # a subclass that declares no kind of its own (a module's private refinement, such as
    # tor.socks.SocksError with its own constructor) is rebuilt as the class that does
    if "kind" in vars(cls):
        _KINDS[cls.kind] = cls
    for sub in cls.__subclasses__():
        _collect(sub)


def from_dict(data: dict) -> ObtError:
    """Rebuild an error sent over the control API (see :meth:`ObtError.to_dict`)."""
    if not _KINDS:
        _collect(ObtError)
    cls = _KINDS.get(str(data.get("kind")), ObtError)
    return cls(str(data.get("message") or ""), hint=data.get("hint"))
