"""The control API under hostile and broken input: a real ControlServer on a Unix socket.

The handler is a small stand-in for the node with the same shape (``handle(op, args)``
dispatching to ``op_<name>(**args)``), checked by :func:`control.ops_validator`. The tests
that act as another Unix user fork a child that drops to ``nobody``; they need root.
"""

from __future__ import annotations

import asyncio
import errno
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

from onionshare_bt import control
from onionshare_bt.control import MAX_REQUEST, ControlServer
from onionshare_bt.errors import ExitCode, Refused, UsageError


def _helper(n: int) -> int:
    return n


class Ops:
    """What the node looks like to the control server."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    async def handle(self, op: str, args: dict):
        self.calls.append((op, args))
        method = getattr(self, f"op_{op}", None)
        if method is None:
            raise UsageError(f"unknown control operation {op!r}")
        return await method(**args)

    async def op_echo(
        self, text: str, times: int = 1, scale: float | None = None, loud: bool = False
    ) -> dict:
        return {"text": text * times, "scale": scale, "loud": loud}

    async def op_deep(self, n: int) -> int:
        return _helper(n, "one too many")  # a bug: TypeError raised inside the op

    async def op_refuse(self) -> None:
        raise Refused("no thanks")

    async def op_unjson(self) -> object:
        return {"a set": {1, 2}}

    async def op_slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


@pytest.fixture
def sock_dir():
    # short (AF_UNIX paths are limited to 108 bytes) and traversable by other users, so
    # that only the socket's own mode keeps them out
    path = Path(tempfile.mkdtemp(prefix="obtctl", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def served(sock_dir):
    ops = Ops()
    server = ControlServer(
        sock_dir / "ctl.sock", ops.handle, validate=control.ops_validator(ops), read_timeout=0.5
    )
    await server.start()
    yield server, ops
    await server.close()


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
async def test_socket_is_0600_owned_by_the_node_user_and_removed_on_close(sock_dir):
    path = sock_dir / "ctl.sock"
    victim = sock_dir / "victim"
    victim.write_text("keep me")
    path.symlink_to(victim)  # a planted link is replaced, never followed
    server = ControlServer(path, Ops().handle)
    await server.start()
    info = path.lstat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert (info.st_uid, info.st_gid) == (os.getuid(), os.getgid())
    assert victim.read_text() == "keep me"
    await server.close()
    assert not path.exists() and victim.exists()


async def test_a_valid_request_round_trips(served):
    server, ops = served
    result = await control.call(server.path, "echo", {"text": "ab", "times": 2, "scale": 3})
    assert result == {"text": "abab", "scale": 3, "loud": False}
    assert ops.calls == [("echo", {"text": "ab", "times": 2, "scale": 3})]


# -- malformed bodies -----------------------------------------------------------------------
@pytest.mark.parametrize("body, fragment", [
    (b"not json\n", "not JSON"),
    (b"\xff\xfe\x00garbage\n", "not JSON"),
    (b"\n", "not JSON"),
    (b'{"op": "echo", "args": {"text": "no newline, then EOF"}}', ""),
    (b"[" * 100_000 + b"\n", "not JSON"),
    (b'{"a": ' * 50_000 + b"\n", "not JSON"),
    (b'[{"op": "echo", "args": {"text": "x"}}]\n', "not a JSON object"),
    (b"42\n", "not a JSON object"),
    (b'"echo"\n', "not a JSON object"),
    (b"null\n", "not a JSON object"),
    (b"{}\n", "op must be an operation name"),
    (b'{"args": {}}\n', "op must be an operation name"),
    (b'{"op": 5}\n', "op must be an operation name"),
    (b'{"op": null}\n', "op must be an operation name"),
    (b'{"op": ["echo"]}\n', "op must be an operation name"),
    (b'{"op": "../etc/passwd"}\n', "op must be an operation name"),
    (b'{"op": "echo; rm"}\n', "op must be an operation name"),
    (b'{"op": "' + b"e" * 5000 + b'"}\n', "op must be an operation name"),
    (b'{"op": "echo", "args": [1, 2]}\n', "args must be a JSON object"),
    (b'{"op": "echo", "args": "text=x"}\n', "args must be a JSON object"),
    (b'{"op": "echo", "args": null}\n', "args must be a JSON object"),
])
async def test_malformed_requests_get_a_usage_error_and_never_reach_the_handler(
    served, body, fragment
):
    server, ops = served
    reply = await ask(server.path, body)
    if fragment:
        usage_error(reply, fragment)
        assert ops.calls == []
    else:  # a complete object without its newline is still one request
        assert reply["ok"] is True
    assert await control.call(server.path, "echo", {"text": "still here"})


@pytest.mark.parametrize("args, fragment", [
    ({"text": "a", "bogus": 1}, "got an unexpected keyword argument 'bogus'"),
    ({"text": "a", "self": 1}, "got an unexpected keyword argument 'self'"),
    ({}, "missing a required argument: 'text'"),
    ({"times": 2}, "missing a required argument: 'text'"),
    ({"text": 5}, "text must be a string, not an integer"),
    ({"text": None}, "text must be a string, not null"),
    ({"text": ["a"]}, "text must be a string, not a list"),
    ({"text": "a", "times": True}, "times must be an integer, not true or false"),
    ({"text": "a", "times": 1.5}, "times must be an integer, not a number"),
    ({"text": "a", "times": "3"}, "times must be an integer, not a string"),
    ({"text": "a", "scale": "big"}, "scale must be a number or null, not a string"),
    ({"text": "a", "loud": "yes"}, "loud must be true or false, not a string"),
    ({"text": "a", "x" * 100_000: 1}, "got an unexpected keyword argument"),
])
async def test_bad_arguments_are_a_usage_error_for_that_op(served, args, fragment):
    server, ops = served
    reply = await ask(server.path, json.dumps({"op": "echo", "args": args}).encode() + b"\n")
    usage_error(reply, "bad arguments for echo: ")
    assert fragment in reply["error"]["message"]
    assert len(reply["error"]["message"]) < 300  # a huge key is not echoed back whole
    assert ops.calls == []
    with pytest.raises(UsageError) as info:
        await control.call(server.path, "echo", args)
    assert info.value.exit_code == ExitCode.USAGE


async def test_json_nan_and_infinity_are_typed_as_numbers(served):
    server, ops = served
    reply = await ask(server.path, b'{"op": "echo", "args": {"text": NaN}}\n')
    usage_error(reply, "text must be a string, not a number")
    reply = await ask(server.path, b'{"op": "echo", "args": {"text": "x", "scale": Infinity}}\n')
    assert reply["ok"] is True  # JSON's NaN/Infinity are floats; the op decides


async def test_a_type_error_raised_inside_the_op_is_not_masked(served):
    server, ops = served
    reply = await ask(server.path, b'{"op": "deep", "args": {"n": 1}}\n')
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "node"
    assert reply["error"]["message"].startswith("internal error in deep: ")
    assert "positional argument" in reply["error"]["message"]
    assert ops.calls == [("deep", {"n": 1})]


async def test_errors_keep_their_kind_and_unknown_ops_are_usage_errors(served):
    server, _ = served
    with pytest.raises(Refused, match="no thanks"):
        await control.call(server.path, "refuse")
    with pytest.raises(UsageError, match="unknown control operation 'nope'"):
        await control.call(server.path, "nope", {"anything": [1]})


async def test_a_reply_that_is_not_json_is_an_internal_error_not_silence(served):
    server, _ = served
    reply = await ask(server.path, b'{"op": "unjson"}\n')
    assert reply["ok"] is False and reply["error"]["kind"] == "node"
    assert "not JSON" in reply["error"]["message"]


# -- size and time limits -------------------------------------------------------------------
async def test_a_request_over_one_mib_is_refused(served):
    server, ops = served
    body = json.dumps({"op": "echo", "args": {"text": "a" * (MAX_REQUEST + 10)}}).encode()
    usage_error(await ask(server.path, body + b"\n"), f"larger than {MAX_REQUEST} bytes")
    usage_error(await ask(server.path, b"x" * (3 * MAX_REQUEST)), "larger than")
    assert ops.calls == []
    # just under the limit is served
    text = "b" * (MAX_REQUEST - 100)
    assert (await control.call(server.path, "echo", {"text": text}))["text"] == text


async def test_a_silent_client_is_dropped_after_the_read_timeout_and_others_are_served(served):
    server, ops = served
    loop = asyncio.get_running_loop()
    silent = [await asyncio.open_unix_connection(str(server.path)) for _ in range(20)]
    half = await asyncio.open_unix_connection(str(server.path))
    half[1].write(b'{"op": "echo", "ar')
    started = loop.time()
    # the others are answered at once while the silent ones wait
    assert await control.call(server.path, "echo", {"text": "x"}, timeout=0.4)
    assert loop.time() - started < 0.4
    for reader, writer in [*silent, half]:
        line = await asyncio.wait_for(reader.read(), 5)
        usage_error(json.loads(line), "no request within 0.5 s")
        writer.close()
    assert 0.4 <= loop.time() - started < 5
    assert ops.calls == [("echo", {"text": "x"})]


async def test_many_concurrent_clients_each_get_their_own_answer(served):
    server, ops = served
    texts = [f"client-{i}" for i in range(300)]
    slow = asyncio.create_task(control.call(server.path, "slow", {"seconds": 0.3}))
    results = await asyncio.gather(*(control.call(server.path, "echo", {"text": t}) for t in texts))
    assert [r["text"] for r in results] == texts
    assert await slow == "done"
    assert len(ops.calls) == 301


async def test_close_with_clients_still_connected_is_prompt(sock_dir):
    server = ControlServer(sock_dir / "ctl.sock", Ops().handle, read_timeout=30)
    await server.start()
    idle = [await asyncio.open_unix_connection(str(server.path)) for _ in range(10)]
    started = time.monotonic()
    await server.close()
    assert time.monotonic() - started < 2
    assert not server.path.exists()
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


REQUEST = b'{"op": "echo", "args": {"text": "from nobody"}}\n'


@as_root
async def test_another_user_is_refused_by_the_socket_mode(served):
    server, ops = served
    report = await asyncio.to_thread(_as_nobody, server.path, REQUEST)
    assert report["mode"] == 0o600
    assert report["connect_errno"] == errno.EACCES
    assert ops.calls == []


@as_root
async def test_another_user_is_refused_by_peer_credentials_if_the_socket_is_opened_up(served):
    server, ops = served
    server.path.chmod(0o666)  # as if the mode had been lost: SO_PEERCRED still says no
    report = await asyncio.to_thread(_as_nobody, server.path, REQUEST)
    assert "connect_errno" not in report and "recv_errno" not in report, report
    reply = json.loads(report["reply"])
    assert reply["ok"] is False
    assert reply["error"]["kind"] == "node"
    assert reply["error"]["message"] == "permission denied: another user's request"
    assert ops.calls == []
    # and the node's own user is still served
    assert await control.call(server.path, "echo", {"text": "me"}) == {
        "text": "me", "scale": None, "loud": False}
