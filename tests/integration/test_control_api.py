"""The control API under hostile and broken input, served by a real node.

Each test starts a real :class:`onionshare_bt.node.Node` (its store, libtorrent engine,
bridges, tracker, trust, release and mirror services, and its :class:`ControlServer` on a
Unix socket) and talks to it over that socket; only tor is a stand-in
(:class:`tests.integration.fake_tor.FakeTorClient`: onion services that are routes of a
loopback SOCKS port). So every request reaches the node's own operations
(:class:`onionshare_bt.ops.operations.Operations`, built on the node's parts) through the
one table of requests that checks their arguments (:func:`onionshare_bt.ops.requests.parse`).
The tests that act as another Unix user fork a child that drops to ``nobody``; they need
root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import os
import pwd
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

import pytest

from onionshare_bt import control, torrents
from onionshare_bt import node as node_mod
from onionshare_bt.config import Config
from onionshare_bt.control import MAX_REQUEST, ControlServer
from onionshare_bt.errors import ExitCode, OnionUnreachable, Refused, UsageError
from onionshare_bt.node import Node
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.ops import requests as requests_mod
from onionshare_bt.uri import parse_uri

from .fake_tor import FakeTor, FakeTorClient


class Running:
    """A node started for a test, and the requests that reached its operations."""

    def __init__(self, node: Node, socks: FakeTor, calls: list) -> None:
        self.node, self.socks, self.calls = node, socks, calls
        self.path = node.config.socket_path

    async def share(self, root: Path, name: str) -> dict:
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "f.txt").write_text(f"{name}\n")
        return await control.call(self.path, "share", {"path": str(folder)})


@pytest.fixture
def home():
    # short (AF_UNIX paths are limited to 108 bytes) and traversable by other users, so
    # that only the socket's own mode keeps them out
    path = Path(tempfile.mkdtemp(prefix="obtctl", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start_node(home, monkeypatch):
    """Start a real node in ``home``: ``async with start_node(read_timeout=...) as running``.

    Every request that reaches the node's operations (its arguments checked) is recorded
    in ``running.calls``.
    """
    for name in ("OBT_NETWORK", "OBT_TOR", "OBT_HOME"):
        monkeypatch.delenv(name, raising=False)
    calls: list[tuple[str, dict]] = []
    parse = requests_mod.parse

    def recording(op, args):
        request = parse(op, args)
        calls.append((op, args))
        return request

    monkeypatch.setattr(requests_mod, "parse", recording)
    umask = os.umask(0o022)
    os.umask(umask)

    @contextlib.asynccontextmanager
    async def start(read_timeout: float = 0.5):
        monkeypatch.setattr(node_mod, "ControlServer",
                            functools.partial(ControlServer, read_timeout=read_timeout))
        try:
            async with FakeTor() as socks:
                async def new_tor(self):
                    return FakeTorClient(socks)

                monkeypatch.setattr(Node, "_new_tor", new_tor)
                async with Node(Config(home=home, relay=False)) as node:
                    yield Running(node, socks, calls)
        finally:
            os.umask(umask)  # the node sets its own, for the whole process

    return start


@pytest.fixture
async def served(start_node):
    async with start_node() as running:
        yield running


async def raw(path: Path, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is, end our side, read until the server closes."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=64 * MAX_REQUEST)
    try:
        writer.write(data)
        writer.write_eof()
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def ask(path: Path, data: bytes) -> dict:
    line = await raw(path, data)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    return json.loads(line)


def usage_error(reply: dict, fragment: str) -> None:
    assert reply["ok"] is False, reply
    assert reply["error"]["kind"] == "usage", reply
    assert fragment in reply["error"]["message"], reply


# -- the socket itself -------------------------------------------------------------------
async def test_socket_is_0600_owned_by_the_node_user_and_removed_on_stop(start_node, home):
    victim = home / "victim"
    victim.write_text("keep me")
    (home / "node.sock").symlink_to(victim)  # a planted link is replaced, never followed
    async with start_node() as running:
        info = running.path.lstat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o600
        assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
        assert victim.read_text() == "keep me"
        assert (await control.call(running.path, "status"))["pid"] == os.getpid()
    assert not running.path.exists() and victim.exists()


async def test_the_node_s_operations_round_trip(served, tmp_path):
    node = served.node
    info = await served.share(tmp_path, "album")
    tid = info["infohash"]
    assert served.calls == [("share", {"path": str(tmp_path / "album")})]
    # the node really shares it: the engine seeds it, its tracker serves it, the store has it
    assert node.swarm.engine.has(tid) and node.swarm.tracker.torrent_file(tid)
    assert node.swarm.store.torrents.get(tid).role == "share"
    listed = await control.call(served.path, "list")
    assert [(r["id"], r["role"], r["name"]) for r in listed] == [(tid, "share", "album")]
    assert (await control.call(served.path, "torrent", {"id": tid[:12]}))["uri"] == info["uri"]
    await control.call(served.path, "unshare", {"id": tid})
    assert await control.call(served.path, "list") == []
    assert not node.swarm.engine.has(tid)


# -- malformed bodies -----------------------------------------------------------------------
@pytest.mark.parametrize("body, fragment", [
    (b"not json\n", "not JSON"),
    (b"\xff\xfe\x00garbage\n", "not JSON"),
    (b"\n", "not JSON"),
    (b'{"op": "list", "args": {}}', ""),  # no newline, then EOF
    (b"[" * 100_000 + b"\n", "not JSON"),
    (b'{"a": ' * 50_000 + b"\n", "not JSON"),
    (b'[{"op": "list", "args": {}}]\n', "not a JSON object"),
    (b"42\n", "not a JSON object"),
    (b'"list"\n', "not a JSON object"),
    (b"null\n", "not a JSON object"),
    (b"{}\n", "op must be an operation name"),
    (b'{"args": {}}\n', "op must be an operation name"),
    (b'{"op": 5}\n', "op must be an operation name"),
    (b'{"op": null}\n', "op must be an operation name"),
    (b'{"op": ["list"]}\n', "op must be an operation name"),
    (b'{"op": "../etc/passwd"}\n', "op must be an operation name"),
    (b'{"op": "list; rm"}\n', "op must be an operation name"),
    (b'{"op": "' + b"e" * 5000 + b'"}\n', "op must be an operation name"),
    (b'{"op": "list", "args": [1, 2]}\n', "args must be a JSON object"),
    (b'{"op": "list", "args": "text=x"}\n', "args must be a JSON object"),
    (b'{"op": "list", "args": null}\n', "args must be a JSON object"),
])
async def test_malformed_requests_get_a_usage_error_and_never_reach_the_node(
    served, body, fragment
):
    reply = await ask(served.path, body)
    if fragment:
        usage_error(reply, fragment)
        assert served.calls == []
    else:  # a complete object without its newline is still one request
        assert reply == {"ok": True, "result": []}
        assert served.calls == [("list", {})]
    assert await control.call(served.path, "list") == []


@pytest.mark.parametrize("op, args, fragment", [
    ("share", {"path": "a", "bogus": 1}, "got an unexpected keyword argument 'bogus'"),
    ("share", {"path": "a", "self": 1}, "got an unexpected keyword argument 'self'"),
    ("share", {}, "missing a required argument: 'path'"),
    ("share", {"onions": 2}, "missing a required argument: 'path'"),
    ("share", {"path": 5}, "path must be a string, not an integer"),
    ("share", {"path": None}, "path must be a string, not null"),
    ("share", {"path": ["a"]}, "path must be a string, not a list"),
    ("share", {"path": "a", "onions": True}, "onions must be an integer or null, not true or"),
    ("share", {"path": "a", "onions": 1.5}, "onions must be an integer or null, not a number"),
    ("share", {"path": "a", "onions": "3"}, "onions must be an integer or null, not a string"),
    ("share", {"path": "a", "scrub": "yes"}, "scrub must be true or false, not a string"),
    ("get", {"uri": "u", "target": "t", "timeout": "big"},
     "timeout must be a number or null, not a string"),
    ("search", {"terms": "one"}, "terms must be a list, not a string"),
    ("share", {"path": "a", "x" * 100_000: 1}, "got an unexpected keyword argument"),
])
async def test_bad_arguments_are_a_usage_error_for_that_op(served, op, args, fragment):
    reply = await ask(served.path, json.dumps({"op": op, "args": args}).encode() + b"\n")
    usage_error(reply, f"bad arguments for {op}: ")
    assert fragment in reply["error"]["message"]
    assert len(reply["error"]["message"]) < 300  # a huge key is not echoed back whole
    assert served.calls == []
    with pytest.raises(UsageError) as info:
        await control.call(served.path, op, args)
    assert info.value.exit_code == ExitCode.USAGE
    assert served.node.swarm.store.torrents.all() == []


async def test_json_nan_and_infinity_are_typed_as_numbers(served):
    reply = await ask(served.path, b'{"op": "share", "args": {"path": NaN}}\n')
    usage_error(reply, "path must be a string, not a number")
    assert served.calls == []
    # JSON's NaN/Infinity are floats, so the checks let them through; the op decides
    reply = await ask(served.path,
                      b'{"op": "get", "args": {"uri": "x", "target": "y", "timeout": Infinity}}\n')
    assert reply["ok"] is False and reply["error"]["kind"] == "bad_uri", reply
    assert served.calls == [("get", {"uri": "x", "target": "y", "timeout": float("inf")})]


async def test_a_bug_raised_inside_an_op_is_reported_not_masked(served, monkeypatch):
    async def buggy(*args, **kwargs):
        return len(1, 2)  # a TypeError raised inside the op, past the argument checks

    monkeypatch.setattr(torrents.Swarm, "share", buggy)
    reply = await ask(served.path, b'{"op": "share", "args": {"path": "/x"}}\n')
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "node"
    assert reply["error"]["message"].startswith("internal error in share: ")
    assert "len()" in reply["error"]["message"]
    assert served.calls == [("share", {"path": "/x"})]
    assert await control.call(served.path, "list") == []  # and the node goes on


async def test_errors_keep_their_kind_and_unknown_ops_are_usage_errors(served, tmp_path):
    with pytest.raises(UsageError, match="no single torrent matches id 'nope'"):
        await control.call(served.path, "torrent", {"id": "nope"})
    with pytest.raises(UsageError, match="unknown control operation 'nope'"):
        await control.call(served.path, "nope", {"anything": [1]})
    # another token on this node's own share onion: its tracker answers 404, a refusal
    uri = parse_uri((await served.share(tmp_path, "album"))["uri"])
    other = f"http://{uri.onion}.onion/private/{'x' * len(uri.token)}"
    with pytest.raises(Refused) as info:
        await control.call(served.path, "get", {"uri": other, "target": str(tmp_path)})
    assert info.value.exit_code == ExitCode.REFUSED
    assert f"{uri.onion}.onion" in served.socks.dialled


async def test_a_reply_that_is_not_json_is_an_internal_error_not_silence(served, monkeypatch):
    async def unjson(*args, **kwargs):
        return {"a set": {1, 2}}

    monkeypatch.setattr(torrents.Swarm, "share", unjson)
    reply = await ask(served.path, b'{"op": "share", "args": {"path": "/x"}}\n')
    assert reply["ok"] is False and reply["error"]["kind"] == "node"
    assert "not JSON" in reply["error"]["message"]


# -- size and time limits -------------------------------------------------------------------
async def test_a_request_over_one_mib_is_refused(served):
    body = json.dumps({"op": "share", "args": {"path": "a" * (MAX_REQUEST + 10)}}).encode()
    usage_error(await ask(served.path, body + b"\n"), f"larger than {MAX_REQUEST} bytes")
    usage_error(await ask(served.path, b"x" * (3 * MAX_REQUEST)), "larger than")
    assert served.calls == []
    # just under the limit is served
    term = "a" * (MAX_REQUEST - 100)
    found = await control.call(served.path, "search", {"terms": [term]})
    assert found["results"] == []
    assert [op for op, _ in served.calls] == ["search"]


async def _silent_server():
    """A loopback server that accepts and never answers (an onion that hangs)."""
    held = []

    async def hold(reader, writer):
        held.append(writer)
        await reader.read()

    return await asyncio.start_server(hold, "127.0.0.1", 0), held


async def test_a_silent_client_is_dropped_after_the_read_timeout_and_others_are_served(served):
    loop = asyncio.get_running_loop()
    silent = [await asyncio.open_unix_connection(str(served.path)) for _ in range(20)]
    half = await asyncio.open_unix_connection(str(served.path))
    half[1].write(b'{"op": "list", "ar')
    started = loop.time()
    # the others are answered at once while the silent ones wait
    assert await control.call(served.path, "list", timeout=0.4) == []
    assert loop.time() - started < 0.4
    for reader, writer in [*silent, half]:
        line = await asyncio.wait_for(reader.read(), 5)
        usage_error(json.loads(line), "no request within 0.5 s")
        writer.close()
    assert 0.4 <= loop.time() - started < 5
    assert served.calls == [("list", {})]


async def test_many_concurrent_clients_each_get_their_own_answer(served, tmp_path):
    ids = [(await served.share(tmp_path, f"share-{i}"))["infohash"] for i in range(3)]
    # an onion that accepts and never answers: a get that waits out its timeout
    server, held = await _silent_server()
    hanging = onion_from_pubkey(b"\x05" * 32)
    served.socks.routes[f"{hanging}.onion"] = server.sockets[0].getsockname()[1]
    try:
        slow = asyncio.create_task(control.call(served.path, "get", {
            "uri": f"http://{hanging}.onion/private/{'t' * 32}", "target": str(tmp_path),
            "timeout": 0.5}))
        asked = [ids[i % 3] for i in range(300)]
        results = await asyncio.gather(
            *(control.call(served.path, "torrent", {"id": tid}) for tid in asked))
        assert not slow.done()  # the 300 were answered while the slow one still waited
        assert [r["id"] for r in results] == asked
        with pytest.raises(OnionUnreachable, match="no answer"):
            await slow
    finally:
        server.close()
        for writer in held:
            writer.close()
    assert len(served.calls) == 3 + 300 + 1


async def test_stopping_with_clients_still_connected_is_prompt(start_node):
    async with start_node(read_timeout=30) as running:
        idle = [await asyncio.open_unix_connection(str(running.path)) for _ in range(10)]
        started = time.monotonic()
    assert time.monotonic() - started < 2
    assert not running.path.exists()
    for _, writer in idle:
        writer.close()


# -- another Unix user -----------------------------------------------------------------------
def _nobody() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        return None


as_root = pytest.mark.skipif(
    os.geteuid() != 0 or _nobody() is None,
    reason="acting as another Unix user needs root and a 'nobody' user "
    "(the tests run as root here and in CI)",
)


def _child(nobody: pwd.struct_passwd, path: str, payload: bytes, report: int) -> None:
    """In the forked child: become nobody, try the socket, report as JSON on ``report``."""
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    result: dict = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    result["mode"] = stat.S_IMODE(os.stat(path).st_mode)  # the directory lets us this far
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    try:
        sock.connect(path)
    except OSError as exc:
        result["connect_errno"] = exc.errno
    else:
        sock.sendall(payload)
        reply = b""
        try:
            while not reply.endswith(b"\n") and (chunk := sock.recv(65536)):
                reply += chunk
        except OSError as exc:
            result["recv_errno"] = exc.errno
        result["reply"] = reply.decode()
    os.write(report, json.dumps(result).encode())


def _as_nobody(path: Path, payload: bytes) -> dict:
    """Fork a child that drops to nobody and talks to ``path``; return its report."""
    nobody = _nobody()  # looked up before fork(): the child only makes system calls
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            os.close(read_end)
            _child(nobody, str(path), payload, write_end)
        except BaseException as exc:
            os.write(write_end, json.dumps({"crash": repr(exc)}).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    report = json.loads(data)
    assert "crash" not in report, report
    assert (report["uid"], report["gid"], report["groups"]) == (nobody.pw_uid, nobody.pw_gid, [])
    return report


REQUEST = b'{"op": "list", "args": {}}\n'


@as_root
async def test_another_user_is_refused_by_the_socket_mode(served):
    report = await asyncio.to_thread(_as_nobody, served.path, REQUEST)
    assert report["mode"] == 0o600
    assert report["connect_errno"] == errno.EACCES
    assert served.calls == []


@as_root
async def test_another_user_is_refused_by_peer_credentials_if_the_socket_is_opened_up(served):
    served.path.chmod(0o666)  # as if the mode had been lost: SO_PEERCRED still says no
    report = await asyncio.to_thread(_as_nobody, served.path, REQUEST)
    assert "connect_errno" not in report and "recv_errno" not in report, report
    reply = json.loads(report["reply"])
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "node"
    assert reply["error"]["message"] == "permission denied: another user's request"
    assert served.calls == []
    # and the node's own user is still served
    assert await control.call(served.path, "list") == []
    assert served.calls == [("list", {})]
