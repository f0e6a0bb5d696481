"""``obt ui`` through the real CLI against a fake node: the request it sends, what it prints."""

from __future__ import annotations

import json

import pytest

from tests.unit.test_relay_notice import FakeNode, obt
from tests.unit.test_relay_notice import home  # noqa: F401  (fixture)

URL = "http://127.0.0.1:40193/management/" + "t" * 43
ONION_URL = f"http://{'u' * 56}.onion/management/" + "t" * 43


def link(args):
    out = {"url": URL, "expires": 1000.0}
    if args.get("onion"):
        out["onion_url"] = ONION_URL
    return out


@pytest.fixture
def node(home):  # noqa: F811
    fake = FakeNode(home, {"ui_link": link})
    fake.start()
    yield fake
    fake.stop()


def test_obt_ui_prints_the_one_time_link(node):
    result = obt("ui")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == URL + "\n"
    assert ("ui_link", {"onion": False}) in node.calls


def test_obt_ui_onion_prints_both_links_and_json(node):
    result = obt("ui", "--onion")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{URL}\n{ONION_URL}\n"
    assert ("ui_link", {"onion": True}) in node.calls
    result = obt("ui", "--onion", "--json")
    assert json.loads(result.stdout) == {"url": URL, "onion_url": ONION_URL, "expires": 1000.0}


def test_obt_ui_browser_opens_the_link(node, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    assert obt("ui", "--browser").exit_code == 0
    assert opened == [URL]
