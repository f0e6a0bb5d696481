"""Circuit isolation keys: what decides which requests may share a Tor circuit."""

from __future__ import annotations

import asyncio

from onionshare_bt.tor import socks
from onionshare_bt.tor.http import isolation_key

ONION = "a" * 56


def test_two_shares_behind_one_onion_get_two_keys():
    one = isolation_key(f"http://{ONION}.onion/private/tokenone/announce?x=1")
    two = isolation_key(f"http://{ONION}.onion/private/tokentwo/announce?x=1")
    assert one != two


def test_one_share_keeps_its_key_and_the_token_is_not_in_it():
    torrent = isolation_key(f"http://{ONION}.onion/private/tokenone")
    announce = isolation_key(f"http://{ONION}.onion/private/tokenone/announce?info_hash=z")
    assert torrent == announce
    assert "tokenone" not in torrent and ONION not in torrent and len(torrent) == 32


def test_other_onions_and_purposes_get_other_keys():
    keys = {isolation_key(u) for u in (f"http://{ONION}.onion/node",
                                        f"http://{ONION}.onion/public/t",
                                        f"http://{'b' * 56}.onion/node")}
    assert len(keys) == 3


async def test_socks_isolation_sends_the_key_as_username_and_password():
    seen = {}

    async def fake_tor(reader, writer):
        seen["greeting"] = await reader.readexactly(3)
        writer.write(b"\x05\x02")
        version, ulen = await reader.readexactly(2)
        user = await reader.readexactly(ulen)
        (plen,) = await reader.readexactly(1)
        seen["auth"] = (user, await reader.readexactly(plen))
        writer.write(b"\x01\x00")
        request = await reader.readexactly(5)
        await reader.readexactly(request[4] + 2)
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        await writer.drain()

    server = await asyncio.start_server(fake_tor, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await socks.open_connection(("127.0.0.1", port), ONION, 6881,
                                                isolation="peer:abc")
        writer.close()
    finally:
        server.close()
    assert seen["greeting"] == b"\x05\x01\x02"
    assert seen["auth"] == (b"peer:abc", b"peer:abc")
