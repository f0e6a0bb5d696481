"""Hostile input against a real TrackerServer on 127.0.0.1, over real HTTP.

The tracker runs on its own event loop in a thread, so the tests (and hypothesis) talk to it
with plain blocking sockets and can send any bytes at all. Every reply must be one of:

- HTTP 200 with a bencoded dict: ``failure reason`` alone, or onion-only peers;
- the tracker's plain 404, byte for byte the same as for a missing share;
- a 4xx from aiohttp's own HTTP parser (garbage, request line over 8190 bytes, ...);
- nothing, only for a request the client never finished (garbage), or a reset while the
  client was still sending more than the server will read.

A complete request says ``Connection: close`` and is read to the end of the connection: a
complete, well-formed request that gets no reply (a tracker that drops requests, or never
answers) fails :func:`check`.

Never a 5xx, never an IP address in a 200 or 404, and afterwards the tracker still answers
a valid announce. Announced addresses that are not exactly a v3 onion are never stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import logging
import os
import re
import secrets
import socket
import threading
import time
import urllib.parse

import bencodepy
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_event
from hypothesis import strategies as st

from onionshare_bt.onion import is_onion, onion_from_pubkey
from onionshare_bt.tracker import core
from onionshare_bt.tracker.server import NOT_FOUND_BODY, Served, TrackerServer

INFO_HASH = b"\xff\xfe\x00obt-fuzz-hash\x80\x81\xc3("  # 20 bytes, not UTF-8 on purpose
assert len(INFO_HASH) == 20
SEEDER = onion_from_pubkey(b"\x07" * 32)
IPV4 = re.compile(rb"(?<![0-9])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9])")
FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def fresh_onion() -> str:
    return onion_from_pubkey(os.urandom(32))


def bad_checksum(onion: str) -> str:
    flipped = "b" if onion[50] != "b" else "c"
    return onion[:50] + flipped + onion[51:]


#: addresses an announcer may claim that must never be stored or handed out
HOSTILE_IPS = [
    "1.2.3.4", "127.0.0.1", "10.0.0.1:6881", "[::1]", "::1", "::ffff:1.2.3.4", "fe80::1%eth0",
    "localhost", "example.com", "tracker.onion", "1.2.3.4.onion", "2130706433", "0x7f000001",
    "", f"{bad_checksum(SEEDER)}.onion", "a" * 56 + ".onion", "expyuzz4wqqyqhjn.onion",
    f" {SEEDER}", f"{SEEDER}\n", f"{SEEDER}\x00", f"{SEEDER}.onion.onion", f"{SEEDER}.onion:80",
    f"http://{SEEDER}.onion/", f"{SEEDER}.onion/x", f"{SEEDER[:-1]}.onion",
]


@dataclasses.dataclass
class Reply:
    status: int | None
    headers: dict[str, str]
    body: bytes
    #: the server reset the connection (while we sent more than it reads, at times)
    reset: bool = False


class LiveTracker:
    """A TrackerServer on its own loop in a thread, serving one share."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = TrackerServer(interval=60)
        self.token = secrets.token_urlsafe(16)
        self.run(self.server.start())
        share = Served("fuzz", self.token, b"d4:infod4:name4:fuzzee", (INFO_HASH,), ((SEEDER, 80),))
        self.port = self.run(self.server.serve(share))

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stored(self, info_hash: bytes = INFO_HASH) -> list[tuple[str, int]]:
        async def peers():
            return self.server.peers.peers(info_hash, time.monotonic())

        return self.run(peers())

    def close(self) -> None:
        self.run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def announce_path(self) -> str:
        return f"/private/{self.token}/announce"


@pytest.fixture(scope="module")
def tracker():
    live = LiveTracker()
    yield live
    live.close()


# -- HTTP over raw sockets ----------------------------------------------------------------
def exchange(port: int, data: bytes, timeout: float = 10.0) -> Reply:
    """Send ``data`` as is and read what comes back until the server closes.

    A complete request (:func:`request`) says ``Connection: close``, so the server ends the
    connection after its response; a server that sent nothing for ``timeout`` gave no reply
    (status None, which :func:`check` fails for a complete request). A reply cut off in the
    middle raises. Our side is never half-closed: aiohttp drops even a complete request
    unanswered after a half-close, which would make every reply "no reply".
    """
    chunks = []
    reset = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            reset = True
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            reset = True
        except TimeoutError:
            if chunks:
                raise
    reply = parse_http(b"".join(chunks))
    reply.reset = reset
    return reply


def parse_http(raw: bytes) -> Reply:
    if not raw:
        return Reply(None, {}, b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body)


def request(port: int, target: bytes | str, method: bytes = b"GET", extra: bytes = b"",
            timeout: float = 10.0) -> Reply:
    """A complete request: the server answers, then closes (``Connection: close``)."""
    if isinstance(target, str):
        target = target.encode("ascii")
    head = method + b" " + target + b" HTTP/1.1\r\nHost: x.onion\r\nConnection: close\r\n"
    return exchange(port, head + extra + b"\r\n", timeout=timeout)


def query(**overrides) -> str:
    """A valid announce query with ``overrides`` (None drops a key; bytes are sent raw)."""
    params: dict[str, object] = {
        "info_hash": INFO_HASH, "peer_id": b"-XX0000-" + os.urandom(12),
        "ip": f"{fresh_onion()}.onion", "port": 6881, "uploaded": 0, "downloaded": 0,
        "left": 0, "event": "started",
    }
    params.update(overrides)
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


def announce(tracker: LiveTracker, q: str, timeout: float = 10.0) -> Reply:
    return request(tracker.port, f"{tracker.announce_path}?{q}", timeout=timeout)


# -- what every reply must satisfy ---------------------------------------------------------
def check(reply: Reply, *, complete: bool = True, oversized: bool = False) -> dict | None:
    """Assert the universal rules; return the decoded announce reply for a 200.

    :param complete: the request was a whole HTTP request, so it must get a whole reply;
        False for garbage that may be unfinished, where no reply is legitimate
    :param oversized: the request was larger than the server reads, so the server may
        reset the connection while the client is still sending it, losing the reply
    """
    if complete:
        assert reply.status is not None or (oversized and reply.reset), (
            f"no reply to a complete request: {reply}")
    if "content-length" in reply.headers:  # read to the end: the whole body arrived
        assert len(reply.body) == int(reply.headers["content-length"]), reply
    assert reply.status is None or reply.status < 500, reply
    # no reply names the software or reads the clock, aiohttp's own refusals included
    assert "server" not in reply.headers and "date" not in reply.headers, reply
    if reply.status is None or reply.status not in (200, 404):
        # aiohttp's own parser refusal: a 4xx that never carries our own address
        assert reply.status is None or 400 <= reply.status < 500, reply
        assert b"127.0.0.1" not in reply.body and b"Traceback" not in reply.body
        return None
    assert "server" not in reply.headers
    assert not IPV4.search(reply.body), reply.body
    if reply.status == 404:
        assert reply.body == NOT_FOUND_BODY.encode()
        return None
    data = bencodepy.decode(reply.body)
    assert isinstance(data, dict)
    if b"failure reason" in data:
        assert set(data) == {b"failure reason"}
        return data
    for peer in data[b"peers"]:
        host = peer[b"ip"].decode("ascii")
        assert host.endswith(".onion") and len(host) == 62 and is_onion(host), peer
        assert 0 < peer[b"port"] < 65536
    return data


def check_stored(tracker: LiveTracker) -> list[tuple[str, int]]:
    stored = tracker.stored()
    for onion, port in stored:
        assert len(onion) == 56 and is_onion(onion) and 0 < port < 65536, (onion, port)
    return stored


def assert_alive(tracker: LiveTracker) -> None:
    me = fresh_onion()
    data = check(announce(tracker, query(ip=f"{me}.onion", numwant=200)))
    assert b"failure reason" not in data, data
    assert data[b"interval"] == 60
    hosts = {p[b"ip"].decode() for p in data[b"peers"]}
    assert f"{SEEDER}.onion" in hosts and f"{me}.onion" not in hosts
    assert (me, 6881) in tracker.stored()


def reason(data: dict) -> str:
    return data[b"failure reason"].decode()


# -- check() fails a tracker that does not answer ---------------------------------------------
async def _answers_too_late(self, request):
    await asyncio.sleep(2)  # after the client gave up (its timeout is 1 s)
    return web.Response(text="late")


async def _drops_the_connection(self, request):
    request.transport.abort()
    return web.Response(text="never sent")


@pytest.mark.parametrize("handler", [_answers_too_late, _drops_the_connection],
                         ids=["answers too late", "drops the connection"])
def test_check_fails_a_complete_request_that_gets_no_reply(monkeypatch, handler):
    monkeypatch.setattr(TrackerServer, "_announce", handler)
    silent = LiveTracker()
    try:
        reply = announce(silent, query(), timeout=1)
        assert reply.status is None
        with pytest.raises(AssertionError, match="no reply to a complete request"):
            check(reply)
        with pytest.raises(AssertionError, match="no reply to a complete request"):
            check(reply, oversized=True)  # no reset: a small request was just dropped
        check(reply, complete=False)  # what unfinished garbage may get
    finally:
        silent.close()


def test_check_fails_a_reply_cut_short():
    with pytest.raises(AssertionError):
        check(Reply(404, {"content-length": str(len(NOT_FOUND_BODY) + 5)},
                    NOT_FOUND_BODY.encode()))


# -- property tests --------------------------------------------------------------------------
@FUZZ
@given(
    st.one_of(
        st.binary(max_size=400).map(lambda b: urllib.parse.quote_from_bytes(b, safe="=&")),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=400),
        st.lists(
            st.tuples(st.sampled_from(["info_hash", "peer_id", "ip", "port", "left", "x"]),
                      st.binary(max_size=30)),
            max_size=40,
        ).map(lambda pairs: urllib.parse.urlencode(pairs)),
    )
)
def test_random_queries_get_a_failure_reason_never_a_500(tracker, raw_query):
    before = tracker.stored()
    reply = announce(tracker, raw_query)
    data = check(reply)
    assert reply.status in (200, 400)  # 400: a character aiohttp's parser refuses in a URL
    if reply.status == 200:
        assert b"failure reason" in data  # none of these is a complete announce
    assert check_stored(tracker) == before


def _ints() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(-(2**70), 2**70).map(str),
        st.sampled_from(["", "²", "¹²³", "٣", "+80", " 80", "80 ", "0x50", "1e3", "-0", "8_0"]),
        st.text(max_size=8),
    )


def _uint(text: str, hi: int = 2**63 - 1) -> bool:
    return re.fullmatch(r"[0-9]{1,19}", text) is not None and int(text) <= hi


#: for each announce field, values an attacker might send (some happen to be valid)
HOSTILE_FIELDS = {
    "info_hash": st.binary(max_size=41),
    "peer_id": st.binary(max_size=41),
    "ip": st.one_of(
        st.sampled_from(HOSTILE_IPS),
        st.none(),
        st.text(max_size=70),
        st.builds(lambda: fresh_onion().upper()),
    ),
    "port": st.one_of(st.none(), _ints()),
    "left": _ints(),
    "numwant": _ints(),
    "event": st.text(max_size=10),
}


@FUZZ
@given(
    broken=st.sets(st.sampled_from(sorted(HOSTILE_FIELDS)), max_size=3),
    repeat=st.lists(st.sampled_from(["info_hash", "port", "ip", "event"]), max_size=2),
    data=st.data(),
)
def test_mutated_announces_store_only_valid_onions(tracker, broken, repeat, data):
    params: dict = {
        "info_hash": INFO_HASH, "peer_id": b"p" * 20, "ip": f"{fresh_onion()}.onion",
        "port": data.draw(st.integers(1, 65535).map(str), label="valid port"),
        "left": "0", "numwant": None, "event": data.draw(st.sampled_from(sorted(core.EVENTS))),
    }
    for field in sorted(broken):
        params[field] = data.draw(HOSTILE_FIELDS[field], label=field)
    pairs = [(k, v) for k, v in params.items() if v is not None]
    pairs += [(k, params[k]) for k in repeat if params[k] is not None]
    reply = check(announce(tracker, urllib.parse.urlencode(pairs)))
    stored = check_stored(tracker)
    host = (params["ip"] or "").lower().removesuffix(".onion")
    port = params["port"] or ""
    # neither ip nor port: an observer, answered (seeders only) and never stored
    observer = params["ip"] is None and params["port"] is None
    valid = (
        params["info_hash"] == INFO_HASH and len(params["peer_id"]) == 20
        and (observer or (len(host) == 56 and is_onion(host) and _uint(port, 65535)
                          and int(port) > 0))
        and _uint(params["left"]) and params["event"] in core.EVENTS
        and (params["numwant"] is None or _uint(params["numwant"]))
        and not [k for k in repeat if params[k] is not None]
    )
    note_event("accepted" if valid else "refused")
    assert (b"failure reason" not in reply) == valid, (params, reply)
    if valid and not observer and params["event"] != "stopped":
        assert (host, int(port)) in stored


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=1500),
        st.binary(max_size=600).map(lambda g: b"GET /private/" + g + b" HTTP/1.1\r\n\r\n"),
        st.binary(max_size=600).map(lambda g: b"GET /" + g + b"\r\n\r\n"),
        st.binary(max_size=300).map(lambda g: b"GET / HTTP/1.1\r\n" + g + b"\r\n\r\n"),
    )
)
def test_binary_garbage_never_gets_a_500(tracker, garbage):
    # garbage may be an unfinished request: after 0.5 s of silence, no reply is legitimate
    reply = exchange(tracker.port, garbage, timeout=0.5)
    note_event(f"status {reply.status}")
    check(reply, complete=False)


def test_malformed_requests_are_logged_quietly_and_without_their_bytes(tracker, caplog):
    caplog.set_level(logging.DEBUG)
    target = tracker.announce_path.encode() + b"?\xff1.2.3.4"
    reply = exchange(tracker.port, b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert reply.status == 400
    ours = [r for r in caplog.records if r.name.startswith("onionshare_bt")]
    assert any("malformed HTTP request" in r.getMessage() for r in ours)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert tracker.token not in caplog.text and "1.2.3.4" not in caplog.text


def test_garbage_with_the_real_token_never_gets_a_500(tracker):
    path = tracker.announce_path.encode()
    for tail in (b"?\xff\xfe\x00", b"?" + b"%" * 50, b"\xc3\x28?a=b", b"?a=\r\nX: y", b"/../../x"):
        data = b"GET " + path + tail + b" HTTP/1.1\r\n\r\n"
        check(exchange(tracker.port, data, timeout=2))
    assert_alive(tracker)


def test_parser_refusals_carry_no_server_header(tracker):
    """aiohttp answers these itself; httpserve strips Server and Date from them too."""
    reply = exchange(tracker.port, b"\x16\x03\x01 not http\r\n\r\n")
    assert reply.status == 400
    assert "server" not in reply.headers and "date" not in reply.headers
    assert reply.body == b"400: Bad Request"
    assert "aiohttp" not in str(reply.headers).lower() and "python" not in str(reply.headers).lower()


# -- explicit hostile classes ----------------------------------------------------------------
@pytest.mark.parametrize("ip", HOSTILE_IPS, ids=lambda ip: repr(ip)[:24])
def test_ip_looking_and_non_onion_addresses_are_refused_and_never_stored(tracker, ip):
    before = tracker.stored()
    data = check(announce(tracker, query(ip=ip)))
    assert reason(data) == "ip must be a v3 onion address"
    assert check_stored(tracker) == before
    # and the next valid announcer is handed onions only (check() looks at every peer)
    data = check(announce(tracker, query(numwant=200)))
    assert data[b"peers"] and all(p[b"ip"].decode() != ip for p in data[b"peers"])


def test_an_uppercase_onion_is_stored_in_lowercase(tracker):
    me = fresh_onion()
    check(announce(tracker, query(ip=f"{me.upper()}.ONION")))
    assert (me, 6881) in tracker.stored()


@pytest.mark.parametrize("port", [
    "-1", "0", "65536", "99999999999999999999999", "1e3", "0x50", "+80", " 80", "80 ", "",
    "http", "²", "¹²³", "٣", "８０",
])
def test_non_numeric_negative_and_huge_ports_are_refused(tracker, port):
    data = check(announce(tracker, query(port=port)))
    assert "port" in reason(data)


def test_non_numeric_ports_in_raw_latin1_escapes_are_refused(tracker):
    for raw in ("%B2", "%B9%B2%B3", "%FF", "%00", "8%000"):
        q = query(port=None) + "&port=" + raw
        assert "port" in reason(check(announce(tracker, q)))
    assert_alive(tracker)


@pytest.mark.parametrize("field, value, expected", [
    ("info_hash", b"\xaa" * 19, "info_hash must be 20 bytes"),
    ("info_hash", b"\xaa" * 21, "info_hash must be 20 bytes"),
    ("info_hash", b"", "info_hash must be 20 bytes"),
    ("info_hash", b"\xaa" * 1400, "query too long"),
    ("info_hash", b"\x01" * 20, "unknown info_hash"),
    ("peer_id", b"x" * 19, "peer_id must be 20 bytes"),
    ("left", "-5", "left must be a non-negative integer"),
    ("left", str(2**63), "left is out of range"),
    ("uploaded", "1" * 20, "uploaded must be a non-negative integer"),
    ("event", b"\xff", "unknown event"),
    ("event", "exploded", "unknown event"),
])
def test_bad_fields_get_their_failure_reason(tracker, field, value, expected):
    before = tracker.stored()
    data = check(announce(tracker, query(**{field: value})))
    assert reason(data) == expected
    assert check_stored(tracker) == before


def test_non_utf8_percent_escapes(tracker):
    me = fresh_onion()
    # a binary info_hash is the normal case; a non-UTF-8 key is just an unknown key
    ok = check(announce(tracker, query(ip=f"{me}.onion") + "&%FF%FE=%C3%28"))
    assert b"failure reason" not in ok and (me, 6881) in tracker.stored()
    for q in (query(ip=None) + "&ip=%FF%FE.onion", query(event=None) + "&event=%FF",
              query(peer_id=None) + "&peer_id=%C3%28"):
        assert b"failure reason" in check(announce(tracker, q))
    # in the token: the same 404 as any wrong token
    for target in (f"/private/%FF%FE/announce?{query()}", "/private/%FF", "/private/%C3%28"):
        reply = request(tracker.port, target)
        check(reply)
        assert reply.status == 404


def test_repeated_keys_are_refused(tracker):
    for key, value in (("port", "6882"), ("ip", f"{fresh_onion()}.onion"),
                       ("info_hash", "%FF" * 20)):
        data = check(announce(tracker, query() + f"&{key}={value}"))
        assert reason(data) == f"repeated parameter {key}"
    # an unknown key is not echoed back: it could be anything, an IP address included
    data = check(announce(tracker, query() + "&1.2.3.4=a&1.2.3.4=b"))
    assert reason(data) == "repeated parameter"


def test_ten_thousand_parameters(tracker):
    # as a URL: longer than aiohttp's 8190-byte request line, refused by its parser
    crowded = "&".join(f"k{i}=v" for i in range(10_000))
    reply = announce(tracker, crowded)
    check(reply)
    assert reply.status is not None and 400 <= reply.status < 500 and reply.status != 404
    # 10k keys that fit are impossible; 1000 do, and our parser refuses them
    data = check(announce(tracker, query() + "&" + "&".join("a" for _ in range(1000))))
    assert reason(data) in ("too many parameters", "query too long")
    data = check(announce(tracker, query() + "&" + "&".join(f"{i}=" for i in range(40))))
    assert reason(data) == "too many parameters"
    data = check(announce(tracker, query() + "&pad=" + "x" * core.MAX_QUERY))
    assert reason(data) == "query too long"
    assert_alive(tracker)


@pytest.mark.parametrize("size", [8000, 9000, 100_000, 1_000_000])
def test_very_long_urls(tracker, size):
    target = tracker.announce_path + "?" + query() + "&pad=" + "x" * size
    reply = request(tracker.port, target)
    # aiohttp refuses a request line over 8190 bytes (or resets a client still sending)
    data = check(reply, oversized=size > 8190)
    assert reply.status == 400 or reason(data) == "query too long" or reply.reset
    assert_alive(tracker)


def test_ten_thousand_headers_and_a_huge_header(tracker):
    many = b"".join(b"X-%d: y\r\n" % i for i in range(10_000))
    check(request(tracker.port, f"{tracker.announce_path}?{query()}", extra=many),
          oversized=True)
    huge = b"X-Big: " + b"y" * 100_000 + b"\r\n"
    check(request(tracker.port, f"{tracker.announce_path}?{query()}", extra=huge),
          oversized=True)
    assert_alive(tracker)


def _same_404(reply: Reply, reference: Reply) -> None:
    assert (reply.status, reply.body) == (404, reference.body)
    assert set(reply.headers) - {"date"} == set(reference.headers) - {"date"}


@pytest.mark.parametrize("method", [
    b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE", b"PROPFIND", b"HEAD", b"get",
    b"BREW", b"CONNECT", b"G\x00ET", b"\xff\xfe",
])
def test_odd_methods_on_the_announce_url(tracker, method):
    reference = request(tracker.port, f"/private/{secrets.token_urlsafe(16)}/announce?{query()}")
    assert reference.status == 404
    reply = request(tracker.port, f"{tracker.announce_path}?{query()}", method=method)
    if method == b"HEAD":  # GET without the body
        assert (reply.status, reply.body) == (200, b"") and "server" not in reply.headers
    elif reply.status == 404:
        _same_404(reply, reference)
    else:
        check(reply)
        assert reply.status == 400  # the parser's refusal of an unknown method
    assert_alive(tracker)


def test_a_large_body_on_the_announce_url_is_a_plain_404(tracker):
    reference = request(tracker.port, "/nothing/here")
    body = os.urandom(1024 * 1024)
    extra = b"Content-Length: %d\r\n\r\n" % len(body) + body
    reply = exchange(tracker.port, b"POST " + tracker.announce_path.encode()
                     + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + extra)
    check(reply, oversized=True)
    assert reply.status in (None, 404)  # None: reset while we were still sending
    if reply.status == 404:
        _same_404(reply, reference)
    assert_alive(tracker)


def test_a_client_that_never_finishes_does_not_block_others(tracker):
    with socket.create_connection(("127.0.0.1", tracker.port)) as idle:
        idle.sendall(b"GET " + tracker.announce_path.encode() + b"?info_hash=")
        assert_alive(tracker)


# -- memory bound --------------------------------------------------------------------------
def test_a_flood_of_distinct_onions_is_capped_per_torrent(tracker):
    flood_hash = os.urandom(20)
    token = secrets.token_urlsafe(16)
    share = Served("flood", token, b"d4:infodee", (flood_hash,), ((SEEDER, 80),))
    port = tracker.run(tracker.server.serve(share))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    onions = [onion_from_pubkey(i.to_bytes(32, "big")) for i in range(core.MAX_PEERS + 300)]
    try:
        for onion in onions:
            conn.request("GET", f"/private/{token}/announce?" + query(
                info_hash=flood_hash, ip=f"{onion}.onion", numwant=0, left=1))
            resp = conn.getresponse()
            assert resp.status == 200 and b"failure reason" not in resp.read()
        # unknown info_hashes on the same listener never open a new swarm
        for _ in range(50):
            conn.request("GET", f"/private/{token}/announce?" + query(info_hash=os.urandom(20)))
            resp = conn.getresponse()
            assert b"unknown info_hash" in resp.read()
    finally:
        conn.close()
    stored = tracker.stored(flood_hash)
    assert tracker.server.peers.size(flood_hash) == core.MAX_PEERS == len(stored) - 1
    # the stalest were forgotten, the freshest kept, the share's own seeder always listed
    assert {o for o, _ in stored} == {SEEDER} | set(onions[-core.MAX_PEERS:])
    assert tracker.server.peers.counts(flood_hash) == (1, core.MAX_PEERS)
    tracker.run(tracker.server.withdraw("flood"))
    assert tracker.server.peers.size(flood_hash) == 0
    assert_alive(tracker)
