"""The web-of-trust walk and the search merge (pure core, fake fetches)."""

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from onionshare_bt.trust.core import Item, Limits, NodeInfo, Visit, Walk, search, walk


def onion(name: str) -> str:
    """A distinct 56-character stand-in for a node onion (the core does not validate)."""
    return name.ljust(56, "x")


A, B, C, D, E, F = (onion(n) for n in "abcdef")


def drive(state: Walk, graph: dict[str, list[str]], down: dict[str, str] = {}) -> list[Visit]:
    """Run ``state`` to the end against a dict graph; ``down`` maps onion -> error."""
    while batch := state.next_batch():
        for node, _ in batch:
            if node in down:
                state.record(node, None, down[node])
            else:
                state.record(node, NodeInfo(node, tuple(graph.get(node, ()))))
    assert state.done and state.next_batch() == []
    return state.visits()


def run(me, graph, limits, down={}):
    return drive(Walk(me, graph.get(me, []), limits), graph, down)


CHAIN = {A: [B], B: [C], C: [D], D: []}


@pytest.mark.parametrize("depth, expected", [
    (0, []), (1, [B]), (2, [B, C]), (3, [B, C, D]), (4, [B, C, D]),
])
def test_chain_depth_limits_what_is_visited(depth, expected):
    visits = run(A, CHAIN, Limits(depth=depth))
    assert [v.onion for v in visits] == expected
    assert [v.degree for v in visits] == list(range(1, len(expected) + 1))
    assert [v.via for v in visits] == [None, B, C][: len(expected)]
    assert all(v.reachable and v.error is None for v in visits)


def test_cycles_terminate_and_never_visit_me():
    graph = {A: [B], B: [C, A, B], C: [D, B], D: [A, B, C]}
    visits = run(A, graph, Limits(depth=10))
    assert [(v.onion, v.degree) for v in visits] == [(B, 1), (C, 2), (D, 3)]


def test_a_node_trusted_by_several_is_visited_once_at_its_lowest_degree():
    graph = {A: [B, C], B: [D, C], C: [D, E], D: [E], E: []}
    visits = {v.onion: v for v in run(A, graph, Limits(depth=3))}
    assert (visits[C].degree, visits[C].via) == (1, None)  # direct, though B also trusts it
    assert (visits[D].degree, visits[D].via) == (2, B)  # first in breadth-first order
    assert (visits[E].degree, visits[E].via) == (2, C)  # not 3 through D
    assert len(visits) == 4


def test_direct_duplicates_and_me_are_ignored():
    visits = run(A, {A: [B, A, B, C, C]}, Limits())
    assert [v.onion for v in visits] == [B, C]


def test_unreachable_nodes_are_reported_not_expanded_and_the_walk_goes_on():
    graph = {A: [B, C], B: [D], C: [E], E: [F]}
    visits = run(A, graph, Limits(depth=3), down={B: "timed out after 10 s"})
    assert [v.onion for v in visits] == [B, C, E, F]  # D, only trusted by B, is never seen
    b = visits[0]
    assert (b.reachable, b.error) == (False, "timed out after 10 s")
    assert all(v.reachable for v in visits[1:])


def test_no_document_or_a_document_for_another_onion_is_unreachable():
    state = Walk(A, [B, C], Limits(depth=2))
    assert state.next_batch() == [(B, 1), (C, 1)]
    state.record(B, None)
    state.record(C, NodeInfo(D, (E,)))  # answered as someone else: not followed
    assert state.done and state.next_batch() == []
    assert [(v.reachable, v.error) for v in state.visits()] == [
        (False, "no node document"), (False, "its node document names another onion")]


def test_fan_out_follows_only_the_first_trusts_listed():
    others = [onion(f"n{i}") for i in range(6)]
    graph = {A: [B], B: [A, B, others[0], others[0], *others]}
    visits = run(A, graph, Limits(depth=2, fan_out=3))
    assert [v.onion for v in visits] == [B, *others[:3]]  # me, itself, the repeat don't count


def test_fan_out_does_not_cap_my_own_direct_list():
    direct = [onion(f"n{i}") for i in range(5)]
    assert len(run(A, {A: direct}, Limits(fan_out=1))) == 5


def test_total_caps_the_visits_and_drops_what_is_queued_beyond_it():
    level2 = [onion(f"n{i}") for i in range(5)]
    graph = {A: [B, C], B: level2, C: [D]}
    visits = run(A, graph, Limits(depth=3, total=4))
    assert [v.onion for v in visits] == [B, C, *level2[:2]]  # D (via C) came too late


def test_batches_are_whole_levels_and_must_be_recorded_before_the_next():
    state = Walk(A, [B, C], Limits(depth=2))
    assert state.next_batch() == [(B, 1), (C, 1)]
    state.record(B, NodeInfo(B, (D,)))
    with pytest.raises(RuntimeError):
        state.next_batch()
    with pytest.raises(ValueError):
        state.record(D, None, "not asked for")
    with pytest.raises(ValueError):
        state.record(B, None, "twice")
    assert not state.done
    state.record(C, NodeInfo(C, (D, E)))
    assert state.next_batch() == [(D, 2), (E, 2)]


def test_limits_refuse_negative_values():
    with pytest.raises(ValueError, match="fan_out"):
        Limits(fan_out=-1)


def test_tree_nests_each_node_under_the_node_that_led_to_it():
    graph = {A: [B, C], B: [D], C: [E]}
    state = Walk(A, graph[A], Limits(depth=2))
    drive(state, graph, down={E: "connection refused"})
    leaf = lambda o, r=True, err=None: {  # noqa: E731
        "onion": o, "degree": 2, "reachable": r, "error": err, "children": []}
    assert state.tree() == {"onion": A, "children": [
        {"onion": B, "degree": 1, "reachable": True, "error": None, "children": [leaf(D)]},
        {"onion": C, "degree": 1, "reachable": True, "error": None,
         "children": [leaf(E, False, "connection refused")]},
    ]}
    assert Walk(A, [], Limits()).tree() == {"onion": A, "children": []}


# -- generated graphs ---------------------------------------------------------------------

@st.composite
def graphs(draw):
    """A random trust graph of up to 60 nodes (node 0 is me), some nodes down, some limits."""
    n = draw(st.integers(1, 60))
    nodes = [onion(f"n{i}") for i in range(n)]
    pick = st.lists(st.sampled_from(nodes), max_size=8)  # repeats, self and me included
    graph = {node: draw(pick) for node in nodes}
    down = {node: f"{node} is down" for node in draw(st.sets(st.sampled_from(nodes)))}
    limits = Limits(depth=draw(st.integers(0, 6)), fan_out=draw(st.integers(0, 5)),
                    total=draw(st.integers(0, 70)))
    return nodes[0], graph, down, limits


def followed(graph, me, node, limits):
    """The trusts of ``node`` the walk may follow: first fan_out, unique, not me nor itself."""
    unique = [t for t in dict.fromkeys(graph[node]) if t not in (me, node)]
    return unique[: limits.fan_out]


def reference_distances(me, graph, down, limits):
    """Plain BFS over the followed edges, no total cap: node -> shortest distance."""
    dist = {t: 1 for t in dict.fromkeys(graph[me]) if t != me} if limits.depth else {}
    frontier = list(dist)
    for degree in range(2, limits.depth + 1):
        nxt = []
        for node in frontier:
            if node in down:
                continue
            for t in followed(graph, me, node, limits):
                if t != me and t not in dist:
                    dist[t] = degree
                    nxt.append(t)
        frontier = nxt
    return dist


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_generated_graphs_respect_every_cap_and_find_shortest_degrees(case):
    me, graph, down, limits = case
    visits = run(me, graph, limits, down)
    seen = [v.onion for v in visits]
    assert len(seen) == len(set(seen)) and me not in seen
    assert len(visits) <= limits.total
    assert all(1 <= v.degree <= limits.depth for v in visits)
    assert [v.degree for v in visits] == sorted(v.degree for v in visits)  # BFS order
    by_via = Counter(v.via for v in visits if v.via is not None)
    assert all(count <= limits.fan_out for count in by_via.values())
    where = {v.onion: v for v in visits}
    dist = reference_distances(me, graph, down, limits)
    for v in visits:
        assert v.degree == dist[v.onion]
        assert v.reachable == (v.onion not in down)
        if v.via is not None:
            parent = where[v.via]
            assert parent.reachable and parent.degree == v.degree - 1
            assert v.onion in followed(graph, me, v.via, limits)
    assert len(visits) == min(limits.total, len(dist))
    if len(dist) <= limits.total:  # no cap binds: exactly the nodes within depth
        assert set(seen) == set(dist)


# -- the async driver ---------------------------------------------------------------------

async def test_walk_fetches_each_level_concurrently_and_reports_failures():
    wide = [onion(f"w{i}") for i in range(8)]
    graph = {A: [B, *wide], B: [C], wide[0]: [D], C: [E]}
    calls, active, peak = [], 0, 0

    async def fetch(node):
        nonlocal active, peak
        calls.append(node)
        active += 1
        peak = max(peak, active)
        for _ in range(3):
            await asyncio.sleep(0)
        active -= 1
        if node == wide[1]:
            raise ConnectionRefusedError("refused by the onion service")
        if node == wide[2]:
            raise TimeoutError()
        return NodeInfo(node, tuple(graph.get(node, ())))

    visits = await walk(A, graph[A], Limits(depth=2), fetch)
    assert peak == 9  # the whole first level at once
    assert [v.onion for v in visits] == [B, *wide, C, D]
    assert sorted(calls) == sorted(v.onion for v in visits)  # each fetched once, E not at all
    errors = {v.onion: v.error for v in visits if not v.reachable}
    assert errors == {wide[1]: "refused by the onion service", wide[2]: "TimeoutError"}


async def test_walk_lets_non_exceptions_through():
    class Stop(BaseException):
        pass

    async def fetch(node):
        raise Stop()

    with pytest.raises(Stop):
        await walk(A, [B], Limits(), fetch)


# -- search -------------------------------------------------------------------------------

def item(name, infohash, size=1):
    return Item(name=name, size=size, infohash=infohash, uri=f"http://x.onion/public/{name}",
                added=1.0, files=1)


CATALOGUES = {
    B: [item("Debian Netinst.iso", "aa11" + "0" * 36), item("notes.txt", "bb22" + "0" * 36)],
    C: [item("debian-live.iso", "cc33" + "0" * 36), item("Debian Netinst.iso", "aa11" + "0" * 36)],
    D: [item("alpine.iso", "dd44" + "0" * 36), item("debian src.tar", "AA11" + "0" * 36)],
    E: [item("debian-secret.iso", "ee55" + "0" * 36)],  # E is not in the trusted set
}
DEGREES = {B: 2, C: 1, D: 3}


def test_search_matches_all_terms_case_insensitively():
    rows = search(CATALOGUES, DEGREES, ["DEBIAN", " iso "])
    assert [(r["name"], r["node"], r["degree"]) for r in rows] == [
        ("Debian Netinst.iso", C, 1), ("debian-live.iso", C, 1)]  # once, at the lowest degree
    assert set(rows[0]) == {"name", "size", "infohash", "uri", "added", "files",
                            "description", "kind", "node", "degree"}
    assert rows[0]["kind"] == "share"


def test_search_matches_an_infohash_prefix_and_sorts_by_degree_then_name():
    assert [r["name"] for r in search(CATALOGUES, DEGREES, ["dd4"])] == ["alpine.iso"]
    assert [r["name"] for r in search(CATALOGUES, {**DEGREES, C: 5}, [])] == [
        "Debian Netinst.iso", "notes.txt", "alpine.iso", "debian-live.iso"]
    assert search(CATALOGUES, DEGREES, ["debian", "nothing-like-this"]) == []
    assert search({}, {}, ["x"]) == []


def test_search_matches_a_term_in_the_description_too():
    described = Item(name="ep01.opus", size=1, infohash="ff66" + "0" * 36,
                     uri="http://x.onion/public/ep", added=1.0, files=1,
                     description="Field recordings: Lisbon TRAMS at night")
    rows = search({**CATALOGUES, B: [*CATALOGUES[B], described]}, DEGREES, ["trams", "lisbon"])
    assert [(r["name"], r["description"]) for r in rows] == [
        ("ep01.opus", "Field recordings: Lisbon TRAMS at night")]
    assert search(CATALOGUES, DEGREES, ["trams"]) == []
