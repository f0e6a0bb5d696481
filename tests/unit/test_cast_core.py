"""cast/core.py: the backlog a server keeps, and the broadcaster's relay tree."""

from __future__ import annotations

import pytest

from onionshare_bt.cast.core import (
    GRANULE_RATE, MAX_FANOUT, SUSPECT, Backlog, Tree, TreeError,
)
from onionshare_bt.cast.ogg import FLAG_BOS, FLAG_CONTINUED, Page

PAGE = GRANULE_RATE // 5  # 200 ms pages


def head(serial: int = 1) -> list[Page]:
    return [Page.build(b"OpusHead", granule=0, serial=serial, sequence=0, flags=FLAG_BOS),
            Page.build(b"OpusTags", granule=0, serial=serial, sequence=1)]


def audio(i: int, serial: int = 1, flags: int = 0) -> Page:
    """The i-th 200 ms audio page (i from 1)."""
    return Page.build(bytes([i % 256]) * 50, granule=i * PAGE, serial=serial,
                      sequence=i + 1, flags=flags)


def filled(seconds: int, keep: float = 8.0, lead: float = 1.0) -> Backlog:
    backlog = Backlog(keep=keep, lead=lead)
    for page in head():
        backlog.add(page)
    for i in range(1, seconds * 5 + 1):
        backlog.add(audio(i))
    return backlog


# -- backlog -------------------------------------------------------------------------------

def test_a_newcomer_gets_the_headers_then_the_last_second():
    backlog = filled(20)
    got = backlog.start()
    assert got[:2] == head()
    assert [p.granule // PAGE for p in got[2:]] == [95, 96, 97, 98, 99, 100]
    assert backlog.latest == 100 * PAGE


def test_only_the_last_keep_seconds_are_kept():
    backlog = filled(30, keep=5.0)
    kept = [p.granule // PAGE for p in backlog.pages]
    assert kept[0] == 150 - 25 and kept[-1] == 150


def test_a_rejoiner_resumes_just_after_its_last_page():
    backlog = filled(20)
    got = backlog.start(after=audio(97).sequence)
    assert got[:2] == head() and [p.granule // PAGE for p in got[2:]] == [98, 99, 100]
    assert backlog.start(after=audio(100).sequence)[2:] == []  # up to date: the live pages follow


def test_a_rejoiner_behind_the_backlog_starts_at_its_oldest_page():
    backlog = filled(20, keep=2.0)
    got = backlog.start(after=audio(10).sequence)
    assert got[2].granule // PAGE == 90  # pages 11..89 are lost: the gap says so


def test_no_one_starts_inside_a_packet():
    backlog = Backlog(keep=8.0, lead=0.5)
    for page in head():
        backlog.add(page)
    for i in range(1, 11):
        backlog.add(audio(i, flags=FLAG_CONTINUED if i in (8, 9) else 0))
    assert [p.granule // PAGE for p in backlog.start()[2:]] == [10]  # 8 and 9 continue
    assert [p.granule // PAGE for p in backlog.start(after=audio(7).sequence)[2:]] == [10]


def test_a_foreign_or_disordered_page_is_refused():
    backlog = filled(2)
    with pytest.raises(ValueError, match="another logical stream"):
        backlog.add(audio(11, serial=2))
    with pytest.raises(ValueError, match="backwards"):
        backlog.add(audio(3))
    with pytest.raises(ValueError, match="does not grow"):  # same granule, replayed
        backlog.add(audio(10))
    with pytest.raises(ValueError, match="header"):
        backlog.add(head()[1])
    assert backlog.latest == 10 * PAGE


# -- tree ----------------------------------------------------------------------------------

def onion(i: int) -> str:
    return f"{i:056d}"


def test_four_listeners_with_fanout_two_make_a_tree_of_depth_two():
    tree = Tree(root_slots=2)
    placed = [tree.join(onion(i), 2, now=0.0) for i in range(1, 5)]
    assert [(p.parent, p.depth) for p in placed] == [
        ("", 1), ("", 1), (onion(1), 2), (onion(1), 2)]
    assert tree.children("") == [onion(1), onion(2)] and tree.depth() == 2
    # the fifth goes under the other depth-1 relay, before anyone at depth 2
    assert tree.join(onion(5), 2, now=0.0).parent == onion(2)


def test_a_relay_offering_no_slot_gets_no_listener_and_slots_are_capped():
    tree = Tree(root_slots=1)
    tree.join(onion(1), 0, now=0.0)
    with pytest.raises(TreeError, match="free slot"):
        tree.join(onion(2), 2, now=0.0)
    tree = Tree(root_slots=1)
    tree.join(onion(1), 10**6, now=0.0)  # a listener's claim is capped
    for i in range(2, 2 + MAX_FANOUT):
        assert tree.join(onion(i), 0, now=0.0).parent == onion(1)
    with pytest.raises(TreeError):
        tree.join(onion(99), 0, now=0.0)


def test_when_a_relay_dies_its_listeners_rejoin_elsewhere_and_keep_their_own():
    tree = Tree(root_slots=2, ttl=10.0)
    for i in range(1, 7):  # 1, 2 under the broadcaster; 3, 4 under 1; 5, 6 under 2
        tree.join(onion(i), 2, now=0.0)
    assert tree.parent_of(onion(5)) == onion(2)
    # 3 and 4 lose relay 1; 3 re-joins first, naming it
    again = tree.join(onion(3), 2, now=1.0, lost=[onion(1)])
    assert again.parent not in (onion(1), onion(3), onion(4))
    assert again.parent == "" or tree.parent_of(again.parent) is not None
    # relay 1 gets no one new, even if it sends heartbeats (a hostile relay would)
    tree.heartbeat(onion(1), _secret(tree, onion(1)), now=1.0)
    assert tree.join(onion(7), 2, now=1.0).parent != onion(1)
    # nor anyone still below it: 4 has not re-joined yet
    assert tree.parent_of(onion(7)) != onion(4)
    moved = tree.join(onion(4), 2, now=2.0, lost=[onion(1)])
    assert moved.parent not in (onion(1), onion(4))
    assert set(tree.children(onion(1))) == set()
    # relay 1 is not heard from again: forgotten after ttl, the others live on
    for i in (2, 3, 4, 5, 6, 7):
        tree.heartbeat(onion(i), _secret(tree, onion(i)), now=5.0)
    assert onion(1) in tree
    assert tree.expire(now=11.5) == [onion(1)] and onion(1) not in tree and len(tree) == 6


def _secret(tree: Tree, member: str) -> str:
    return tree._members[member].secret


def test_a_rejoining_relay_is_never_placed_under_its_own_listeners():
    tree = Tree(root_slots=1)
    tree.join(onion(1), 1, now=0.0)
    tree.join(onion(2), 2, now=0.0)  # under 1
    tree.join(onion(3), 1, now=0.0)  # under 2
    tree.join(onion(4), 1, now=0.0)  # under 2
    # 2 lost relay 1: the only free slots are under 3 and 4, its own listeners
    with pytest.raises(TreeError, match="free slot"):
        tree.join(onion(2), 2, now=1.0, lost=[onion(1)])
    assert tree.parent_of(onion(2)) == onion(1) and tree.parent_of(onion(3)) == onion(2)
    # a re-join takes back its own place when that is the free one
    assert tree.join(onion(1), 1, now=1.0).parent == ""


def test_a_reported_relay_gets_listeners_again_once_the_suspicion_lapses():
    tree = Tree(root_slots=1, ttl=10 * SUSPECT)
    tree.join(onion(1), 2, now=0.0)
    tree.join(onion(2), 0, now=0.0)  # under 1
    with pytest.raises(TreeError):  # nowhere else to go: it stays where it was
        tree.join(onion(2), 0, now=1.0, lost=[onion(1)])
    assert tree.parent_of(onion(2)) == onion(1)
    with pytest.raises(TreeError):
        tree.join(onion(3), 0, now=2.0)
    assert tree.join(onion(3), 0, now=2.0 + SUSPECT).parent == onion(1)


def test_depths_follow_a_relay_that_moves_up():
    tree = Tree(root_slots=2)
    tree.join(onion(1), 1, now=0.0)
    tree.join(onion(2), 1, now=0.0)
    tree.join(onion(3), 1, now=0.0)  # under 1, depth 2
    tree.join(onion(4), 1, now=0.0)  # under 2, depth 2
    tree.join(onion(5), 1, now=0.0)  # under 3, depth 3
    tree.leave(onion(1), _secret(tree, onion(1)))
    moved = tree.join(onion(3), 1, now=1.0, lost=[onion(1)])
    assert (moved.parent, moved.depth) == ("", 1)
    assert tree._members[onion(5)].depth == 2


def test_heartbeats_need_the_secret_and_a_forgotten_member_must_join_again():
    tree = Tree(root_slots=1, ttl=5.0)
    placed = tree.join(onion(1), 2, now=0.0)
    with pytest.raises(TreeError):
        tree.heartbeat(onion(1), "guessed", now=1.0)
    assert tree.heartbeat(onion(1), placed.secret, now=1.0) == ""
    tree.leave(onion(1), "guessed")  # someone else cannot make it leave
    assert onion(1) in tree
    tree.expire(now=7.0)
    with pytest.raises(TreeError, match="join again"):
        tree.heartbeat(onion(1), placed.secret, now=7.0)


def test_a_listener_cannot_flood_the_tree_with_made_up_relays():
    tree = Tree(root_slots=1, max_members=3)
    for i in range(1, 4):
        tree.join(onion(i), 1, now=0.0)
    with pytest.raises(TreeError, match="as many listeners"):
        tree.join(onion(4), 1, now=0.0)
    tree.join(onion(3), 1, now=1.0)  # a member re-joining still can
