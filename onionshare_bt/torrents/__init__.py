"""Shares and downloads: what the node does with a torrent, from start to seeding.

A *share* is a local file or folder served on K onion services of its own: each onion maps
port 80 to the share's tracker listener and port 6881 to an inbound bridge listener. A
*download* fetches a share's .torrent through Tor, publishes K onions of its own (so it
seeds back), announces them to the share's tracker, and dials every onion peer through an
outbound bridge. Files land in a hidden staging folder inside the target and are moved into
place only when every piece has been verified.

::

    state.py      SwarmState: what the swarm keeps about its torrents while the node runs
                  (peer ids, onion port maps, parsed metadata, announce errors) and the
                  parts it is made of; the modules below take it first
    swarm.py      Swarm: the node's swarm part, the state with the operations below as
                  its methods
    onions.py     publish, new_onions, unpublish, republish_all (after a tor restart)
    shares.py     share (--scrub too), describe_share, set_open, withdraw_onion,
                  restore_share (only if its files are unchanged)
    downloads.py  get, start_download, seed_back, pause, resume, describe_download,
                  restore_download
    announce.py   start_announcing, announce_completed: a download's announce loop, its
                  trackers and mirrors, the peers dialled; the completed announce of a
                  download that completed, the stopped announce of a paused one
    removal.py    remove
    view.py       what the swarm shows: find (by id prefix), status, progress, peers,
                  torrent_file, preview (the files a path would share)

Every operation's code takes the :class:`SwarmState` first; callers outside this package call
the swarm's methods (``swarm.share(...)``), given the swarm in their constructor.
"""

from __future__ import annotations

from .announce import MAX_TRACKERS, announce_completed, announce_once, start_announcing
from .downloads import (
    STAGING_PREFIX,
    describe_download,
    get,
    pause,
    restore_download,
    resume,
    seed_back,
    start_download,
)
from .onions import new_onions, publish, republish_all, unpublish
from .removal import remove
from .shares import describe_share, restore_share, set_open, share, withdraw_onion
from .state import SwarmState
from .swarm import Swarm

__all__ = [
    "MAX_TRACKERS", "STAGING_PREFIX", "Swarm", "SwarmState", "announce_completed", "announce_once",
    "describe_download",
    "describe_share", "get", "new_onions", "pause", "publish", "remove", "republish_all",
    "restore_download", "restore_share", "resume", "seed_back", "set_open", "share",
    "start_announcing", "start_download", "unpublish", "withdraw_onion",
]
