# The state store of obt at commit b1e6838 (onionshare_bt/store.py), the last before the store
# package, kept to build the databases an existing node has (tests/unit/test_store_migration.py).
# Verbatim from `git show b1e6838:onionshare_bt/store.py` but for this header and one import
# (`from .errors import StoreError` made absolute). Never edit it: it is what nodes ran.
"""The node's state: one SQLite database (WAL) in the node's home, file mode 0600.

Tables: ``torrents`` (shares and downloads; a share is *open* when its sharer let
standard BitTorrent clients in, see :mod:`onionshare_bt.tracker.core`), ``onions`` (onion
service keys; they never leave this file and never reach a log), ``meta`` (schema
version; older databases are upgraded when opened), ``tracker_peers`` (only
the live peers a restart needs: pruned on every write, see :meth:`Store.record_peers`), and
trust, catalogue, ledger, mirror and release tables. Every change is one transaction. The
store is synchronous: each call is a few small statements, cheap enough to run on the event
loop.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import time
from pathlib import Path

from onionshare_bt.errors import StoreError

#: 2: ``torrents.open`` (databases of version 1 are upgraded when opened)
SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS torrents (
    id TEXT PRIMARY KEY,          -- v1 info-hash, hex (truncated v2 for v2-only torrents)
    role TEXT NOT NULL CHECK (role IN ('share', 'download')),
    name TEXT NOT NULL,
    save_path TEXT NOT NULL,      -- where libtorrent keeps the files now
    target TEXT NOT NULL,         -- for downloads: the folder the user asked for
    torrent BLOB NOT NULL,
    token TEXT NOT NULL,          -- shares: our token; downloads: the source's token
    uri TEXT NOT NULL,            -- shares: our URI; downloads: the URI fetched
    state TEXT NOT NULL,
    error TEXT,
    resume BLOB,
    added REAL NOT NULL,
    completed REAL,
    open INTEGER NOT NULL DEFAULT 0  -- shares: 1 admits clients that cannot be reached
);
CREATE TABLE IF NOT EXISTS onions (
    address TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('share', 'seed'))
);
CREATE TABLE IF NOT EXISTS trust (
    onion TEXT PRIMARY KEY,       -- a node we trust, 56 chars, no ".onion"
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS catalogue (
    torrent_id TEXT PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS relay_days (
    day TEXT PRIMARY KEY,         -- UTC date, YYYY-MM-DD
    relayed INTEGER NOT NULL      -- bytes relayed for others that day
);
CREATE TABLE IF NOT EXISTS tracker_peers (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    onion TEXT NOT NULL,
    port INTEGER NOT NULL,
    left_bytes INTEGER NOT NULL,
    seen REAL NOT NULL,           -- wall-clock time of the peer's last announce
    PRIMARY KEY (torrent_id, onion, port)
);
CREATE INDEX IF NOT EXISTS tracker_peers_seen ON tracker_peers (seen);
CREATE INDEX IF NOT EXISTS tracker_peers_torrent_seen ON tracker_peers (torrent_id, seen);
CREATE TABLE IF NOT EXISTS trackers (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    onion TEXT NOT NULL,          -- another tracker of a download's share (a mirror)
    added REAL NOT NULL,
    PRIMARY KEY (torrent_id, onion)
);
CREATE TABLE IF NOT EXISTS releases (
    id TEXT PRIMARY KEY,          -- sha256 of the signed manifest, signature and URI offered
    version TEXT NOT NULL,
    manifest BLOB NOT NULL,       -- the exact signed bytes
    signature BLOB NOT NULL,
    uri TEXT NOT NULL,            -- where it is (was) offered
    source TEXT NOT NULL,         -- the node that offered it ("" for our own publish)
    torrent_id TEXT,              -- the download or share holding it
    state TEXT NOT NULL CHECK (state IN ('fetching', 'verified', 'refused')),
    reason TEXT,
    path TEXT,                    -- the release folder once verified
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mirrors (
    source TEXT PRIMARY KEY,      -- the mirrored node's identity onion
    address TEXT NOT NULL,        -- our net-new onion serving the mirror
    key TEXT NOT NULL,
    token TEXT NOT NULL,          -- the mirror catalogue's token
    catalogue TEXT NOT NULL,      -- the source's catalogue path, /public/<token>
    follow INTEGER NOT NULL,
    digest TEXT NOT NULL,         -- the source's catalogue as last copied
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mirror_items (
    source TEXT NOT NULL REFERENCES mirrors(source) ON DELETE CASCADE,
    infohash TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    uri TEXT NOT NULL,            -- the item's URI at the source
    torrent BLOB NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (source, infohash)
);
CREATE TABLE IF NOT EXISTS mirror_peers (
    source TEXT NOT NULL REFERENCES mirrors(source) ON DELETE CASCADE,
    infohash TEXT NOT NULL,
    onion TEXT NOT NULL,
    port INTEGER NOT NULL,
    left_bytes INTEGER NOT NULL,
    seen REAL NOT NULL,           -- wall-clock time the peer was last seen
    PRIMARY KEY (source, infohash, onion, port)
);
"""


@dataclasses.dataclass(frozen=True)
class TorrentRow:
    id: str
    role: str
    name: str
    save_path: str
    target: str
    torrent: bytes
    token: str
    uri: str
    state: str
    error: str | None
    resume: bytes | None
    added: float
    completed: float | None
    #: a share that admits standard clients (announces without an onion); 0 or 1
    open: int = 0


@dataclasses.dataclass(frozen=True)
class ReleaseRow:
    id: str
    version: str
    manifest: bytes = dataclasses.field(repr=False)
    signature: bytes = dataclasses.field(repr=False)
    uri: str = ""
    source: str = ""
    torrent_id: str | None = None
    state: str = "fetching"
    reason: str | None = None
    path: str | None = None
    added: float = 0.0


@dataclasses.dataclass(frozen=True)
class MirrorRow:
    source: str
    address: str
    key: str = dataclasses.field(repr=False)
    token: str = dataclasses.field(repr=False)
    catalogue: str = dataclasses.field(repr=False)
    follow: int = 0
    digest: str = ""
    added: float = 0.0


@dataclasses.dataclass(frozen=True)
class MirrorItemRow:
    source: str
    infohash: str
    name: str
    size: int
    files: int
    uri: str
    torrent: bytes = dataclasses.field(repr=False)
    added: float = 0.0


@dataclasses.dataclass(frozen=True)
class OnionRow:
    address: str
    key: str = dataclasses.field(repr=False)
    torrent_id: str
    purpose: str


#: tracker peers older than this are deleted (the swarm's expiry at the default announce
#: interval: 3 * 60 + 30 s); the node can set :attr:`Store.peer_ttl` to its tracker's
PEER_TTL = 210.0
#: tracker peers kept per torrent (the tracker's default max peers)
PEER_CAP = 1000
#: saved tracker peers older than this are deleted when the store opens
MAX_PEER_AGE = 86400.0


class Store:
    """Open (and create) the database at ``path``.

    :raises StoreError: when the file cannot be opened or is not an obt database
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        #: saved tracker peers expire after this many seconds (see :meth:`record_peers`)
        self.peer_ttl = PEER_TTL
        #: saved tracker peers kept per torrent
        self.peer_cap = PEER_CAP
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)  # idempotent; executescript commits by itself
            with self._tx():
                self._upgrade()
                self._db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
                # no swarm outlives a day of silence: what an older obt kept forever goes
                self._db.execute("DELETE FROM tracker_peers WHERE seen < ?",
                                 (time.time() - MAX_PEER_AGE,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    def _tx(self):
        return _Transaction(self._db)

    def _upgrade(self) -> None:
        """Bring a database an older obt made up to :data:`SCHEMA_VERSION`, inside the
        opening transaction (a new database already has the current schema)."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if found is None:
            return  # a new database: the schema above is the current one
        version = int(found[0]) if str(found[0]).isdigit() else 0
        if version >= SCHEMA_VERSION:
            return
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(torrents)")}
        if "open" not in columns:  # version 1: every share was closed
            self._db.execute("ALTER TABLE torrents ADD COLUMN open INTEGER NOT NULL DEFAULT 0")
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'schema'",
                         (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self._db.close()

    # -- torrents ---------------------------------------------------------------------
    def add_torrent(self, row: TorrentRow, onions: list[OnionRow]) -> None:
        """Insert a torrent and its onion keys in one transaction."""
        fields = dataclasses.asdict(row)
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._tx():
            self._db.execute(f"INSERT INTO torrents ({cols}) VALUES ({marks})", tuple(fields.values()))
            for onion in onions:
                self._db.execute(
                    "INSERT INTO onions VALUES (?, ?, ?, ?)",
                    (onion.address, onion.key, onion.torrent_id, onion.purpose),
                )

    def update_torrent(self, torrent_id: str, **changes) -> None:
        allowed = {"state", "error", "resume", "save_path", "completed", "name", "open"}
        if not changes or set(changes) - allowed:
            raise StoreError(f"bad update of torrent fields {sorted(changes)}")
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._tx():
            self._db.execute(
                f"UPDATE torrents SET {sets} WHERE id = ?", (*changes.values(), torrent_id)
            )

    def remove_torrent(self, torrent_id: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM torrents WHERE id = ?", (torrent_id,))

    def torrent(self, torrent_id: str) -> TorrentRow | None:
        row = self._db.execute("SELECT * FROM torrents WHERE id = ?", (torrent_id,)).fetchone()
        return TorrentRow(**dict(row)) if row else None

    def torrents(self, role: str | None = None) -> list[TorrentRow]:
        if role:
            rows = self._db.execute(
                "SELECT * FROM torrents WHERE role = ? ORDER BY added", (role,)
            )
        else:
            rows = self._db.execute("SELECT * FROM torrents ORDER BY added")
        return [TorrentRow(**dict(r)) for r in rows]

    def find_download(self, uri: str) -> TorrentRow | None:
        row = self._db.execute(
            "SELECT * FROM torrents WHERE role = 'download' AND uri = ?", (uri,)
        ).fetchone()
        return TorrentRow(**dict(row)) if row else None

    # -- onions -----------------------------------------------------------------------
    def onions(self, torrent_id: str | None = None) -> list[OnionRow]:
        if torrent_id:
            rows = self._db.execute("SELECT * FROM onions WHERE torrent_id = ?", (torrent_id,))
        else:
            rows = self._db.execute("SELECT * FROM onions")
        return [OnionRow(**dict(r)) for r in rows]

    def add_onion(self, onion: OnionRow) -> None:
        with self._tx():
            self._db.execute(
                "INSERT INTO onions VALUES (?, ?, ?, ?)",
                (onion.address, onion.key, onion.torrent_id, onion.purpose),
            )

    def remove_onion(self, address: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM onions WHERE address = ?", (address,))

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- trust and the public catalogue -----------------------------------------------
    def trusted(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT onion FROM trust ORDER BY added")]

    def is_trusted(self, onion: str) -> bool:
        return self._db.execute("SELECT 1 FROM trust WHERE onion = ?",
                                (onion,)).fetchone() is not None

    def trust(self, onion: str) -> bool:
        """Trust ``onion``; False if it was trusted already."""
        with self._tx():
            cur = self._db.execute("INSERT OR IGNORE INTO trust VALUES (?, ?)", (onion, time.time()))
        return cur.rowcount == 1

    def distrust(self, onion: str) -> bool:
        with self._tx():
            cur = self._db.execute("DELETE FROM trust WHERE onion = ?", (onion,))
        return cur.rowcount == 1

    def published(self) -> list[tuple[str, float]]:
        return [(r[0], r[1]) for r in self._db.execute(
            "SELECT torrent_id, added FROM catalogue ORDER BY added")]

    def public_shares(self) -> set[str]:
        """Ids of the shares in the public catalogue (one query: it runs on every announce)."""
        return {r[0] for r in self._db.execute(
            "SELECT c.torrent_id FROM catalogue c JOIN torrents t ON t.id = c.torrent_id "
            "WHERE t.role = 'share'")}

    def publish(self, torrent_id: str, public: bool) -> None:
        with self._tx():
            if public:
                self._db.execute("INSERT OR IGNORE INTO catalogue VALUES (?, ?)",
                                 (torrent_id, time.time()))
            else:
                self._db.execute("DELETE FROM catalogue WHERE torrent_id = ?", (torrent_id,))

    # -- relay ledger -------------------------------------------------------------------
    def meta(self, key: str, default: str = "") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def save_ledger(self, values: dict[str, str], day: str, relayed: int) -> None:
        """Store ledger values and add ``relayed`` bytes to ``day``, in one transaction."""
        with self._tx():
            for key, value in values.items():
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))
            if relayed:
                self._db.execute(
                    "INSERT INTO relay_days VALUES (?, ?) "
                    "ON CONFLICT(day) DO UPDATE SET relayed = relayed + excluded.relayed",
                    (day, relayed),
                )

    def relayed_on(self, day: str) -> int:
        row = self._db.execute("SELECT relayed FROM relay_days WHERE day = ?", (day,)).fetchone()
        return int(row[0]) if row else 0

    # -- other trackers of a download ---------------------------------------------------
    def trackers(self, torrent_id: str) -> list[str]:
        return [r[0] for r in self._db.execute(
            "SELECT onion FROM trackers WHERE torrent_id = ? ORDER BY added", (torrent_id,))]

    def add_tracker(self, torrent_id: str, onion: str, limit: int) -> bool:
        """Remember another tracker of a download (at most ``limit``); True if new."""
        with self._tx():
            count = self._db.execute("SELECT COUNT(*) FROM trackers WHERE torrent_id = ?",
                                     (torrent_id,)).fetchone()[0]
            if count >= limit:
                return False
            cur = self._db.execute("INSERT OR IGNORE INTO trackers VALUES (?, ?, ?)",
                                   (torrent_id, onion, time.time()))
        return cur.rowcount == 1

    # -- releases -----------------------------------------------------------------------
    def put_release(self, row: ReleaseRow) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO releases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
                             "?, ?)", dataclasses.astuple(row))

    def releases(self) -> list[ReleaseRow]:
        return [ReleaseRow(**dict(r)) for r in
                self._db.execute("SELECT * FROM releases ORDER BY added")]

    def release(self, release_id: str) -> ReleaseRow | None:
        row = self._db.execute("SELECT * FROM releases WHERE id = ?", (release_id,)).fetchone()
        return ReleaseRow(**dict(row)) if row else None

    # -- mirrors ------------------------------------------------------------------------
    def add_mirror(self, row: MirrorRow, items: list[MirrorItemRow]) -> None:
        with self._tx():
            self._db.execute("INSERT INTO mirrors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             dataclasses.astuple(row))
            for item in items:
                self._db.execute("INSERT INTO mirror_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 dataclasses.astuple(item))

    def mirrors(self) -> list[MirrorRow]:
        return [MirrorRow(**dict(r)) for r in
                self._db.execute("SELECT * FROM mirrors ORDER BY added")]

    def mirror(self, source: str) -> MirrorRow | None:
        row = self._db.execute("SELECT * FROM mirrors WHERE source = ?", (source,)).fetchone()
        return MirrorRow(**dict(row)) if row else None

    def update_mirror(self, source: str, **changes) -> None:
        if not changes or set(changes) - {"follow", "digest"}:
            raise StoreError(f"bad update of mirror fields {sorted(changes)}")
        sets = ", ".join(f"{k} = ?" for k in changes)
        with self._tx():
            self._db.execute(f"UPDATE mirrors SET {sets} WHERE source = ?",
                             (*changes.values(), source))

    def remove_mirror(self, source: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM mirrors WHERE source = ?", (source,))

    def mirror_items(self, source: str) -> list[MirrorItemRow]:
        return [MirrorItemRow(**dict(r)) for r in self._db.execute(
            "SELECT * FROM mirror_items WHERE source = ? ORDER BY added", (source,))]

    def add_mirror_item(self, item: MirrorItemRow) -> None:
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO mirror_items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             dataclasses.astuple(item))

    def remove_mirror_item(self, source: str, infohash: str) -> None:
        with self._tx():
            self._db.execute("DELETE FROM mirror_items WHERE source = ? AND infohash = ?",
                             (source, infohash))
            self._db.execute("DELETE FROM mirror_peers WHERE source = ? AND infohash = ?",
                             (source, infohash))

    def save_mirror_peers(self, source: str,
                          peers: dict[str, list[tuple[str, int, int, float]]]) -> None:
        """Replace a mirror's saved peers: ``{infohash: [(onion, port, left, age)]}``."""
        now = time.time()
        with self._tx():
            self._db.execute("DELETE FROM mirror_peers WHERE source = ?", (source,))
            self._db.executemany(
                "INSERT OR REPLACE INTO mirror_peers VALUES (?, ?, ?, ?, ?, ?)",
                [(source, ih, o, p, left, now - age)
                 for ih, entries in peers.items() for o, p, left, age in entries])

    def mirror_peers(self, source: str, infohash: str, max_age: float
                     ) -> list[tuple[str, int, int, float]]:
        now = time.time()
        rows = self._db.execute(
            "SELECT onion, port, left_bytes, seen FROM mirror_peers "
            "WHERE source = ? AND infohash = ? AND seen >= ?", (source, infohash, now - max_age))
        return [(r[0], r[1], r[2], now - r[3]) for r in rows]

    # -- tracker peers ------------------------------------------------------------------
    def record_peer(self, torrent_id: str, onion: str, port: int, left: int | None, *,
                    ttl: float | None = None, cap: int | None = None,
                    now: float | None = None) -> None:
        """Remember a peer's announce; ``left=None`` (a "stopped" event) forgets it.

        Only what a restart needs is kept (see :meth:`record_peers`).
        """
        self.record_peers(torrent_id, [(onion, port, left)], ttl=ttl, cap=cap, now=now)

    def record_peers(self, torrent_id: str, peers: list[tuple[str, int, int | None]], *,
                     ttl: float | None = None, cap: int | None = None,
                     now: float | None = None) -> None:
        """Remember several peers of one torrent in one transaction, ``(onion, port, left)``
        each (``left=None`` forgets the peer), and prune.

        The table holds what a restart needs and no history: rows older than ``ttl`` (the
        swarm's expiry) are deleted, of every torrent, and each torrent keeps its ``cap``
        most recent rows (the tracker's max peers). Both default to :attr:`peer_ttl` and
        :attr:`peer_cap`.

        :param now: wall-clock seconds (injectable for tests)
        """
        ttl = self.peer_ttl if ttl is None else ttl
        cap = self.peer_cap if cap is None else cap
        now = time.time() if now is None else now
        gone = [(torrent_id, o, p) for o, p, left in peers if left is None]
        kept = [(torrent_id, o, p, left, now) for o, p, left in peers if left is not None]
        with self._tx():
            self._db.executemany(
                "DELETE FROM tracker_peers WHERE torrent_id = ? AND onion = ? AND port = ?",
                gone)
            self._db.executemany("INSERT OR REPLACE INTO tracker_peers VALUES (?, ?, ?, ?, ?)",
                                 kept)
            self._db.execute("DELETE FROM tracker_peers WHERE seen < ?", (now - ttl,))
            if kept:
                self._db.execute(
                    "DELETE FROM tracker_peers WHERE rowid IN (SELECT rowid FROM tracker_peers"
                    " WHERE torrent_id = ? ORDER BY seen DESC LIMIT -1 OFFSET ?)",
                    (torrent_id, cap))

    def tracker_peers(self, torrent_id: str, max_age: float) -> list[tuple[str, int, int, float]]:
        """Peers seen within ``max_age`` seconds: ``(onion, port, left, age)``."""
        now = time.time()
        rows = self._db.execute(
            "SELECT onion, port, left_bytes, seen FROM tracker_peers "
            "WHERE torrent_id = ? AND seen >= ?",
            (torrent_id, now - max_age),
        )
        return [(r[0], r[1], r[2], now - r[3]) for r in rows]

    def peer_rows(self) -> int:
        """How many tracker peers are saved, over every torrent."""
        return self._db.execute("SELECT COUNT(*) FROM tracker_peers").fetchone()[0]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self):
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"state database error: {exc}") from exc
        return False
