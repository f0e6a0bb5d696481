"""The web UI's gate (pure): one-time links that expire, sessions, Host and Origin checks."""

from onionshare_bt.ui import security
from onionshare_bt.ui.security import Gate, host_allowed, origin_allowed


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_link_is_redeemed_once_and_not_after_it_expires():
    clock = Clock()
    gate = Gate(clock)
    token, expires = gate.new_link()
    assert expires == 1000.0 + security.LINK_TTL and len(token) >= 43
    session = gate.redeem(token)
    assert session is not None and gate.session(session.id) is session
    assert gate.redeem(token) is None  # used
    late, _ = gate.new_link()
    clock.now += security.LINK_TTL
    assert gate.redeem(late) is None
    assert gate.redeem("") is None and gate.session("") is None and gate.session(None) is None
    assert gate.session(session.id[:-1]) is None
    assert session.csrf != session.id and session.csrf_ok(session.csrf)
    assert not session.csrf_ok(None) and not session.csrf_ok(session.csrf + "x")


def test_sessions_and_links_are_bounded_oldest_first():
    gate = Gate(Clock())
    first = gate.redeem(gate.new_link()[0])
    tokens = [gate.new_link()[0] for _ in range(security.MAX_LINKS + 1)]
    assert gate.redeem(tokens[0]) is None  # pushed out
    for t in tokens[1:]:
        assert gate.redeem(t) is not None
    assert gate.session(first.id) is None


def test_flash_messages_are_shown_once():
    session = security.Session("i", "c", 0)
    session.say("ok", "done")
    assert session.take_flash() == [("ok", "done")] and session.take_flash() == []


def test_only_the_uis_own_hosts_and_origin():
    onion = "a" * 56
    assert host_allowed("127.0.0.1:8080", 8080, None)
    assert host_allowed("LOCALHOST:8080", 8080, None)
    assert host_allowed(f"{onion}.onion", 8080, onion)
    assert host_allowed(f"{onion}.onion:80", 8080, onion)
    for bad in (None, "", "127.0.0.1", "127.0.0.1:8081", "evil.example:8080",
                f"{onion}.onion", "127.0.0.2:8080", "[::1]:8080"):
        assert not host_allowed(bad, 8080, None), bad
    assert origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080")
    assert origin_allowed(f"http://{onion}.onion", f"{onion}.onion:80")
    for bad in (None, "", "null", "http://localhost:8080", "https://127.0.0.1:8080",
                "http://127.0.0.1:8081"):
        assert not origin_allowed(bad, "127.0.0.1:8080"), bad
