"""The node's operations: one table of names shared by the control client and server.

Every request in :data:`onionshare_bt.ops.requests.REQUESTS` has exactly one runner in
the control socket's :class:`~onionshare_bt.ops.operations.Dispatch` (the node's operations
and the web UI's own) and no runner is left without a name;
the arguments a request sends are those the CLI has always sent; the CLI names operations
only through the table; and a stopped node's ``obt node status --json`` exits 1 through
the error tree without a message (the JSON says it)."""

from __future__ import annotations

import inspect
import json
import pkgutil
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from onionshare_bt import cli, control
from onionshare_bt.cli import main
from onionshare_bt.errors import UsageError
from onionshare_bt.ops import requests as rq
from onionshare_bt.ops.operations import Dispatch, Operations
from onionshare_bt.ui.server import UiServer


def _operations() -> Operations:
    parts = SimpleNamespace(store=None)
    return Operations(config=None, swarm=parts, relay=None, stream=None, origin=None,
                      trust=None, mirrors=None, releases=None, casts=None, gated=set(),
                      stalled=set(),
                      reasons={}, lifetime=None)


def test_every_named_request_has_one_runner_and_every_runner_a_name(tmp_path):
    ui = UiServer(_operations(), log_path=tmp_path / "node.log")
    runners = Dispatch(_operations().runners, ui.runners).runners  # as the node wires them
    assert set(runners) == set(rq.REQUESTS.values())
    assert len({id(r.__func__) for r in runners.values()}) == len(runners)  # none shared
    for name, cls in rq.REQUESTS.items():
        assert cls.op == name and name.isidentifier() and len(name) <= control.MAX_OP
        hint = next(iter(inspect.signature(runners[cls]).parameters.values())).annotation
        assert hint.split(".")[-1] == cls.__name__, (name, hint)  # it takes its own request


def test_no_operation_dispatches_on_an_action_string():
    for cls in rq.REQUESTS.values():
        assert "action" not in {f.name for f in cls.__dataclass_fields__.values()}, cls


@pytest.mark.parametrize("request_, args", [
    (rq.Share(path="/a"), {"path": "/a", "onions": None}),
    (rq.Share(path="/a", onions=3, include_hidden=True, open=False, scrub=True),
     {"path": "/a", "onions": 3, "include_hidden": True, "open": False, "scrub": True}),
    (rq.Get(uri="u", target="/t"), {"uri": "u", "target": "/t", "timeout": None}),
    (rq.Play(id="ab"), {"id": "ab", "file": None}),
    (rq.Unshare(id="ab"), {"id": "ab"}),
    (rq.Unshare(id="ab", onion="x.onion"), {"id": "ab", "onion": "x.onion"}),
    (rq.Remove(id="ab"), {"id": "ab", "delete_data": False}),
    (rq.TrustDepth(), {"depth": None}),
    (rq.Status(), {}),
])
def test_a_request_sends_the_arguments_the_cli_always_sent(request_, args):
    assert request_.args() == args
    assert rq.parse(request_.op, request_.args()) == request_  # and the node reads it back


def test_parse_refuses_unknown_operations_and_meaningless_values():
    with pytest.raises(UsageError, match="unknown control operation 'trust'"):
        rq.parse("trust", {"action": "list"})
    with pytest.raises(UsageError, match="search needs at least one term"):
        rq.parse("search", {"terms": [" "]})
    with pytest.raises(UsageError, match="bad arguments for open: open must be true or false"):
        rq.parse("open", {"id": "ab", "open": None})


def test_the_cli_names_operations_only_through_the_table():
    for info in pkgutil.iter_modules(cli.__path__):
        source = inspect.getsource(__import__(f"onionshare_bt.cli.{info.name}",
                                              fromlist=["_"]))
        assert "control.call(" not in source, info.name


def test_status_json_of_a_stopped_node_exits_1_saying_it_in_the_json_only(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("OBT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("OBT_NETWORK", raising=False)
    result = CliRunner().invoke(main, ["node", "status", "--json"], catch_exceptions=False)
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"running": False, "home": str(tmp_path / "home")}
    assert result.stderr == ""
    text = CliRunner().invoke(main, ["node", "status"], catch_exceptions=False)
    assert text.exit_code == 1 and text.stdout == ""
    assert "obt: error: No obt node is running" in text.stderr


def test_two_parts_cannot_both_run_one_request():
    ops = _operations()
    with pytest.raises(ValueError, match="Status"):
        Dispatch(ops.runners, {rq.Status: ops.runners[rq.Status]})


@pytest.mark.parametrize("onions", [0, 9, 1000, -1])
def test_a_share_on_more_onions_than_k_allows_is_refused_before_anything_runs(onions):
    with pytest.raises(UsageError, match=f"1 to 8 onions, not {onions}"):
        rq.parse("share", {"path": "/a", "onions": onions})
    assert rq.parse("share", {"path": "/a", "onions": 8}).onions == 8
