"""The relay's tables: ``ledger`` (one typed row: the relay tor's counters as last sampled,
the bytes relayed over every run and the payload bytes the node's downloads used; see
:mod:`onionshare_bt.relay.core`) and ``relay_days`` (bytes relayed for others, per UTC day).
"""

from __future__ import annotations

import dataclasses

from .core import Database, columns, select


@dataclasses.dataclass(frozen=True)
class LedgerRow:
    #: the relay tor run its counters belong to ("" before the first)
    boot: str = ""
    #: that run's written counter when last sampled
    last_written: int = 0
    #: bytes relayed for others, over every run
    relayed: int = 0
    #: payload bytes the node's downloads used (the ratio gate's)
    used: int = 0


_COLUMNS = columns(LedgerRow)
_UPSERT = ("INSERT INTO ledger (id, boot, last_written, relayed, used) "
           "VALUES (1, :boot, :last_written, :relayed, :used) ON CONFLICT (id) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS))


class Ledger:
    """The ``ledger`` row and the ``relay_days`` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> LedgerRow:
        row = self._db.execute(f"{select('ledger', _COLUMNS)} WHERE id = 1").fetchone()
        return LedgerRow(**dict(row)) if row else LedgerRow()

    def save(self, row: LedgerRow, day: str, relayed: int) -> None:
        """Store the ledger and add ``relayed`` bytes to ``day``, in one transaction."""
        with self._db.transaction():
            self._db.execute(_UPSERT, dataclasses.asdict(row))
            if relayed:
                self._db.execute(
                    "INSERT INTO relay_days (day, relayed) VALUES (:day, :relayed) "
                    "ON CONFLICT (day) DO UPDATE SET relayed = relayed + excluded.relayed",
                    {"day": day, "relayed": relayed})

    def relayed_on(self, day: str) -> int:
        row = self._db.execute("SELECT relayed FROM relay_days WHERE day = ?", (day,)).fetchone()
        return int(row[0]) if row else 0
