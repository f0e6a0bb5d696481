"""The live-session probes can fail: settings turned on that reach past loopback are found.

Turning DHT, LSD, UPnP or NAT-PMP on, or listening on every address, makes libtorrent send
(IGMP joins, multicast, broadcasts): inside the test namespace those packets go into the
sinkhole, so this module is marked ``leaks_on_purpose`` (tests/conftest.py) and counts them
apart. Its probes and fixtures are test_engine_live_session.py's.
"""

from __future__ import annotations

import libtorrent as lt
import pytest

from tests.integration.test_engine_live_session import (  # noqa: F401 (a fixture)
    live_problems, node_engine, socket_problems, wait_for,
)

pytestmark = pytest.mark.leaks_on_purpose


@pytest.fixture(scope="module", autouse=True)
def quiet_afterwards(sinkhole):
    """Let the kernel's own late packets (IGMP leave reports, resent within ~1 s) fall into
    this module's count, not the next module's: wait until nothing was sent for 2.5 s."""
    yield
    if sinkhole is None:
        return
    import time

    deadline = time.monotonic() + 20
    last, since = sinkhole.packets(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < 2.5:
        time.sleep(0.1)
        now = sinkhole.packets()
        if now != last:
            last, since = now, time.monotonic()


@pytest.mark.parametrize("key, value", [
    ("enable_dht", True), ("enable_lsd", True), ("enable_upnp", True), ("enable_natpmp", True),
    ("enable_outgoing_utp", True), ("enable_incoming_utp", True), ("anonymous_mode", False),
    ("proxy_peer_connections", True), ("proxy_tracker_connections", False),
    ("proxy_hostnames", False), ("proxy_type", int(lt.proxy_type_t.none)),
    ("peer_fingerprint", "-LT2110-"), ("user_agent", "libtorrent/2.1.1.0"),
    ("listen_interfaces", "0.0.0.0:0"),
])
async def test_a_setting_changed_on_the_live_session_is_found(node_engine, key, value):
    engine, socks = node_engine
    engine.session.apply_settings({key: value})
    problems = live_problems(engine, socks.address)
    assert any(p.startswith(f"{key} is ") for p in problems), problems


async def test_lsd_is_found_in_the_sockets_too(node_engine):
    engine, _ = node_engine
    engine.session.apply_settings({"enable_lsd": True})
    found = await wait_for(lambda: socket_problems(engine), 5, "LSD's socket")
    assert found == ["socket bound to 0.0.0.0:6771"]
