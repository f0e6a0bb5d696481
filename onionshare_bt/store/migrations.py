"""The schema's history: numbered steps, applied in order when the store opens.

A database records its version in SQLite's ``user_version``. Opening runs every step above
it, in one transaction with the version's update, so a step that fails leaves the file as
it was. A database newer than :data:`SCHEMA_VERSION` is refused (:class:`StoreTooNew`)
before anything is written.

obt before the store package kept its version in the ``meta`` table (1: no
``torrents.open``; 2: the schema as of b1e6838) and created any missing table on every
open. Such a database is taken as version 1 and step 2, which only creates what is missing,
brings it to the same place as a new database. Steps are never edited once released: a
change is a new step at the end.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from ..errors import StoreTooNew
from .core import Database

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Step:
    version: int
    summary: str
    apply: Callable[[Database], None]


def _statements(db: Database, *sql: str) -> None:
    # one execute per statement: executescript would commit the opening transaction
    for statement in sql:
        db.execute(statement)


# -- 2: the schema of obt up to b1e6838 ---------------------------------------------------
_V2 = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS torrents (
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
)""",
    """CREATE TABLE IF NOT EXISTS onions (
    address TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL CHECK (purpose IN ('share', 'seed'))
)""",
    """CREATE TABLE IF NOT EXISTS trust (
    onion TEXT PRIMARY KEY,       -- a node we trust, 56 chars, no ".onion"
    added REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS catalogue (
    torrent_id TEXT PRIMARY KEY REFERENCES torrents(id) ON DELETE CASCADE,
    added REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS relay_days (
    day TEXT PRIMARY KEY,         -- UTC date, YYYY-MM-DD
    relayed INTEGER NOT NULL      -- bytes relayed for others that day
)""",
    """CREATE TABLE IF NOT EXISTS tracker_peers (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    onion TEXT NOT NULL,
    port INTEGER NOT NULL,
    left_bytes INTEGER NOT NULL,
    seen REAL NOT NULL,           -- wall-clock time of the peer's last announce
    PRIMARY KEY (torrent_id, onion, port)
)""",
    "CREATE INDEX IF NOT EXISTS tracker_peers_seen ON tracker_peers (seen)",
    "CREATE INDEX IF NOT EXISTS tracker_peers_torrent_seen ON tracker_peers (torrent_id, seen)",
    """CREATE TABLE IF NOT EXISTS trackers (
    torrent_id TEXT NOT NULL REFERENCES torrents(id) ON DELETE CASCADE,
    onion TEXT NOT NULL,          -- another tracker of a download's share (a mirror)
    added REAL NOT NULL,
    PRIMARY KEY (torrent_id, onion)
)""",
    """CREATE TABLE IF NOT EXISTS releases (
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
)""",
    """CREATE TABLE IF NOT EXISTS mirrors (
    source TEXT PRIMARY KEY,      -- the mirrored node's identity onion
    address TEXT NOT NULL,        -- our net-new onion serving the mirror
    key TEXT NOT NULL,
    token TEXT NOT NULL,          -- the mirror catalogue's token
    catalogue TEXT NOT NULL,      -- the source's catalogue path, /public/<token>
    follow INTEGER NOT NULL,
    digest TEXT NOT NULL,         -- the source's catalogue as last copied
    added REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS mirror_items (
    source TEXT NOT NULL REFERENCES mirrors(source) ON DELETE CASCADE,
    infohash TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    files INTEGER NOT NULL,
    uri TEXT NOT NULL,            -- the item's URI at the source
    torrent BLOB NOT NULL,
    added REAL NOT NULL,
    PRIMARY KEY (source, infohash)
)""",
    """CREATE TABLE IF NOT EXISTS mirror_peers (
    source TEXT NOT NULL REFERENCES mirrors(source) ON DELETE CASCADE,
    infohash TEXT NOT NULL,
    onion TEXT NOT NULL,
    port INTEGER NOT NULL,
    left_bytes INTEGER NOT NULL,
    seen REAL NOT NULL,           -- wall-clock time the peer was last seen
    PRIMARY KEY (source, infohash, onion, port)
)""",
)


def _to_v2(db: Database) -> None:
    _statements(db, *_V2)
    if "open" not in db.columns("torrents"):  # version 1: every share was closed
        db.execute("ALTER TABLE torrents ADD COLUMN open INTEGER NOT NULL DEFAULT 0")


# -- 3: typed settings instead of the shared meta table -----------------------------------
def _meta(key: str, cast: str = "") -> str:
    value = f"CAST(value AS {cast})" if cast else "value"
    return f"(SELECT {value} FROM meta WHERE key = '{key}')"


_V3 = (
    # the trust part's: the identity onion's key and the public catalogue's token
    """CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key TEXT,                     -- the identity onion's key (NULL until it is made)
    public_token TEXT             -- the public catalogue's token (NULL until it is made)
)""",
    f"""INSERT INTO identity (id, key, public_token)
    VALUES (1, NULLIF({_meta('node.key')}, ''), NULLIF({_meta('node.public_token')}, ''))""",
    """CREATE TABLE trust_settings (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    depth INTEGER NOT NULL DEFAULT 1  -- how far the trust walk goes
)""",
    f"""INSERT INTO trust_settings (id, depth)
    VALUES (1, COALESCE({_meta('trust.depth', 'INTEGER')}, 1))""",
    # the relay's: its ledger (see relay.core.Ledger) and the bytes the node has used
    """CREATE TABLE ledger (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    boot TEXT NOT NULL DEFAULT '',         -- the relay tor run the counters belong to
    last_written INTEGER NOT NULL DEFAULT 0,  -- its written counter when last sampled
    relayed INTEGER NOT NULL DEFAULT 0,    -- bytes relayed for others, over every run
    used INTEGER NOT NULL DEFAULT 0        -- payload bytes the node's downloads used
)""",
    f"""INSERT INTO ledger (id, boot, last_written, relayed, used)
    VALUES (1, COALESCE({_meta('ledger.boot')}, ''),
            COALESCE({_meta('ledger.last_written', 'INTEGER')}, 0),
            COALESCE({_meta('ledger.relayed', 'INTEGER')}, 0),
            COALESCE({_meta('ratio.used', 'INTEGER')}, 0))""",
    "DROP TABLE meta",
)


def _to_v3(db: Database) -> None:
    _statements(db, *_V3)


# -- 4: a public share's description -----------------------------------------------------
def _to_v4(db: Database) -> None:
    _statements(db, "ALTER TABLE catalogue ADD COLUMN description TEXT NOT NULL DEFAULT ''")


STEPS: tuple[Step, ...] = (
    Step(2, "the schema of obt up to b1e6838 (torrents.open)", _to_v2),
    Step(3, "typed settings (identity, trust_settings, ledger) instead of meta", _to_v3),
    Step(4, "a public share's description in the catalogue", _to_v4),
)
#: the version this obt writes and reads
SCHEMA_VERSION = STEPS[-1].version


def found_version(db: Database) -> int:
    """The database's version: ``user_version``, else 1 for a database that keeps it in
    ``meta`` (obt up to b1e6838; step 2 is safe to run again on its version 2), else 0."""
    if db.user_version:
        return db.user_version
    return 1 if "meta" in db.tables() else 0


def migrate(db: Database, steps: tuple[Step, ...] = STEPS) -> int:
    """Bring the database up to the last of ``steps``, in one transaction.

    :returns: the version found
    :raises StoreTooNew: the database is newer than the last step (nothing is written)
    """
    target = steps[-1].version
    with db.transaction():
        found = found_version(db)
        if found > target:
            raise StoreTooNew(f"the state database {db.path} has schema version {found}; "
                              f"this obt knows versions up to {target}")
        for step in steps:
            if step.version > found:
                if found:  # a new database is not an upgrade worth a line in the log
                    log.info("upgrading the state database to version %d: %s", step.version,
                             step.summary)
                step.apply(db)
        if found != target:
            db.user_version = target
    return found
