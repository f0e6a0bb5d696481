"""Live broadcast on loopback (cast/service.py): a broadcaster and four relaying listeners
with real ffmpeg, real aiohttp and real signatures; only Tor is the loopback SOCKS stand-in
of fake_tor.py. The private-network test is tests/tor/test_cast.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from aiohttp import web

from onionshare_bt.cast import listening as cast_listening
from onionshare_bt.cast import protocol as cast_protocol
from onionshare_bt.cast.feed import ticket
from onionshare_bt.cast.ogg import Page
from onionshare_bt.cast.service import CastService
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.tor.http import OnionHTTP

from ..tones import FREQUENCIES, in_order, tones_heard, write_tones
from .fake_tor import FakeTor, FakeTorClient


@contextlib.asynccontextmanager
async def services(socks: FakeTor, n: int):
    made = []
    try:
        for _ in range(n):
            http = OnionHTTP(socks.address)
            await http.start()
            made.append((CastService(FakeTorClient(socks), http), http))
        yield [s for s, _ in made]
    finally:
        for svc, http in made:
            await svc.close()
            await http.close()


async def until(check, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)


def only(svc: CastService, role: str) -> dict:
    [item] = [i for i in svc.list() if i["role"] == role]
    return item


async def join_in_turn(listeners, uri, tmp_path, fanout=2, prefix="heard"):
    for i, svc in enumerate(listeners):
        await svc.listen(uri, fanout, out=str(tmp_path / f"{prefix}{i}.ogg"))
        await until(lambda: only(svc, "listen")["pages"] > 3, 20, f"listener {i} hears")
        await until(lambda: only(svc, "listen")["offered"] == fanout, 20,
                    f"listener {i} offers to relay")


def crash(svc: CastService) -> None:
    """A listener's node gone at once: no leave, its onion and server gone."""
    for listening in svc.listenings.items.values():
        for task in (listening.task, listening.pull):
            if task is not None:
                task.cancel()
        listening.feed.end()
        svc.tor.socks.routes.pop(f"{listening.onion}.onion", None)


async def test_four_listeners_in_a_tree_hear_every_tone_in_order_through_a_relay_death(
        tmp_path):
    """Fan-out 2: two listeners under the broadcaster, two under the first relay (a tree
    of depth 2); the broadcaster never serves more than two. The relay then dies without a
    word: its listeners re-join elsewhere, resume after their last page, and every
    listener's file decodes to the broadcast's tones in order."""
    wav = write_tones(tmp_path / "tones.wav", 0.75)  # 18 s
    async with FakeTor() as socks, services(socks, 5) as (caster, *listeners):
        info = await caster.cast(str(wav), 48, 2)
        assert info["state"] == "live" and "/cast/" in info["uri"]
        serving = []

        async def watch():
            while True:
                serving.append(only(caster, "broadcast")["serving"])
                await asyncio.sleep(0.2)

        watcher = asyncio.ensure_future(watch())
        try:
            await join_in_turn(listeners, info["uri"], tmp_path)
            depths = [only(s, "listen")["depth"] for s in listeners]
            assert depths == [1, 1, 2, 2]  # a tree of depth 2 under a fan-out of 2
            assert only(caster, "broadcast")["listeners"] == 4
            dead = listeners[0]
            dead_onion = next(iter(dead.listenings.items.values())).onion
            orphans = listeners[2:]
            assert all(only(s, "listen")["parent"] == f"{dead_onion}.onion" for s in orphans)
            crash(dead)
            await until(lambda: all(only(s, "listen")["gaps"] for s in orphans), 20,
                        "the dead relay's listeners re-join")
            for svc in orphans:
                item = only(svc, "listen")
                [gap] = item["gaps"]
                assert gap["to"] != f"{dead_onion}.onion" and gap["stall_s"] < 15
                assert gap["pages_lost"] == 0  # resumed after its last page, from a backlog
                assert item["parent"] != f"{dead_onion}.onion"
            alive = listeners[1:]
            await until(lambda: all(only(s, "listen")["state"] == "ended" for s in alive),
                        40, "every listener left hears the broadcast end")
        finally:
            watcher.cancel()
        assert max(serving) == 2  # the broadcaster never serves more than its fan-out
        await until(lambda: only(caster, "broadcast")["state"] == "ended", 10, "ffmpeg ends")
        for i, svc in enumerate(alive, start=1):
            heard = tones_heard(tmp_path / f"heard{i}.ogg")
            assert in_order(heard), heard
            assert len(heard) >= 10 and heard[-1] == FREQUENCIES[-1], heard
            item = only(svc, "listen")
            assert item["refused_servers"] == 0 and item["received"] > 0


async def test_a_relay_that_changes_the_audio_is_left(tmp_path):
    """A hostile relay: placed in the tree like any listener, it serves its listener pages
    it changed. The listener refuses the first one, writes nothing of it, and re-joins
    elsewhere; what it wrote is the broadcast's."""
    wav = write_tones(tmp_path / "tones.wav", 0.5)
    async with FakeTor() as socks, services(socks, 4) as (caster, first, second, victim):
        info = await caster.cast(str(wav), 48, 1)  # the broadcaster serves one listener
        await join_in_turn([first], info["uri"], tmp_path)
        hostile = FakeTorClient(socks)
        onion, _ = await hostile.add_onion({80: ("127.0.0.1", 1)})
        http = OnionHTTP(socks.address)
        await http.start()
        try:
            url = info["uri"]
            reply = json.loads(await http.post(f"{url}/join", json.dumps(
                {"onion": onion, "slots": 8, "lost": []}).encode(), 20, 4096))
            assert reply["parent"] == first.listenings.items[next(iter(first.listenings.items))].onion
            secret = reply["secret"]
            served = []

            async def tampered(request: web.Request) -> web.StreamResponse:
                assert request.query["ticket"] == ticket(secret, request.query["onion"])
                served.append(request.query["onion"])
                response = web.StreamResponse()
                await response.prepare(request)
                for page in caster.broadcasts.items[next(iter(caster.broadcasts.items))].feed.backlog.start():
                    raw = page.raw
                    if not page.is_header:  # same header, other audio, CRC made good
                        raw = Page.build(b"\x00" * 40, granule=page.granule,
                                         serial=page.serial, sequence=page.sequence).raw
                    await response.write(raw + page.sig)
                await asyncio.sleep(3)  # the listener has left by then
                return response

            app = web.Application()
            app.router.add_get("/{tail:.*}", tampered)
            run = web.AppRunner(app)
            await run.setup()
            site = web.TCPSite(run, "127.0.0.1", 0)
            await site.start()
            socks.routes[f"{onion}.onion"] = run.addresses[0][1]

            async def beat():
                while True:
                    await http.post(f"{url}/beat", json.dumps(
                        {"onion": onion, "secret": secret}).encode(), 5, 4096)
                    await asyncio.sleep(1)
            beats = asyncio.ensure_future(beat())
            # the first relays to two: the hostile relay, then the second listener; the
            # victim goes under the shallowest free slot, the hostile relay's (older)
            await join_in_turn([second], url, tmp_path, prefix="second")
            await victim.listen(url, 0, out=str(tmp_path / "victim.ogg"))
            await until(lambda: only(victim, "listen")["refused_servers"] >= 1, 20,
                        "the victim refuses the hostile relay")
            fooled = victim
            assert served and only(second, "listen")["refused_servers"] == 0
            await until(lambda: only(fooled, "listen")["pages"] > 3, 20,
                        "it listens elsewhere")
            await until(lambda: only(fooled, "listen")["state"] == "ended", 40, "the end")
            assert only(fooled, "listen")["parent"] == f"{second.listenings.items[next(iter(second.listenings.items))].onion}.onion"
            heard = tones_heard(tmp_path / "victim.ogg")
            assert in_order(heard) and heard[-1] == FREQUENCIES[-1], heard
            beats.cancel()
            await run.cleanup()
        finally:
            await http.close()


async def test_bad_input_fails_before_anything_is_served(tmp_path):
    (tmp_path / "noise.ogg").write_bytes(b"not audio at all" * 100)
    async with FakeTor() as socks, services(socks, 1) as (caster,):
        from onionshare_bt.errors import BadPath, BadURI, UsageError

        with pytest.raises(BadPath):
            await caster.cast(str(tmp_path / "missing.wav"), 48, 2)
        with pytest.raises(UsageError, match="ffmpeg"):
            await caster.cast(str(tmp_path / "noise.ogg"), 48, 2)
        assert caster.list() == [] and caster.tor.published == {}
        somewhere = onion_from_pubkey(bytes(32))
        with pytest.raises(BadURI, match="obt get"):
            await caster.listen(f"http://{somewhere}.onion/private/" + "t" * 32, 2)
        with pytest.raises(BadURI, match="/cast/"):
            await caster.listen(f"http://{somewhere}.onion/other/" + "t" * 32, 2)
        with pytest.raises(UsageError, match="0 to 8"):
            await caster.listen(f"http://{somewhere}.onion/cast/" + "t" * 32, 99)
        with pytest.raises(BadPath):
            await caster.listen(f"http://{somewhere}.onion/cast/" + "t" * 32, 2,
                                out=str(tmp_path / "no" / "such" / "dir.ogg"))
        assert caster.list() == [] and caster.tor.published == {}


def test_the_stall_limit_is_short_enough_to_rejoin_within_seconds():
    assert cast_listening.STALL <= 5 and cast_protocol.BEAT * 5 >= cast_listening.STALL


async def test_a_restarted_tor_gets_the_casts_onions_again_at_the_same_addresses(tmp_path):
    wav = write_tones(tmp_path / "tones.wav", 0.25)
    async with FakeTor() as socks, services(socks, 2) as (caster, listener):
        info = await caster.cast(str(wav), 48, 2)
        await listener.listen(info["uri"], 2)
        before = dict(socks.routes)
        assert len(before) == 2
        socks.routes.clear()  # tor restarted: no onion service left
        for svc in (caster, listener):
            svc.tor.published.clear()
            await svc.republish()
        assert socks.routes == before
        # the broadcaster stops: the listener hears its stream end and the broadcast gone
        await caster.stop_cast(info["id"])
        await until(lambda: only(listener, "listen")["state"] == "ended", 30,
                    "the listener learns the broadcast is over")
        assert only(listener, "listen")["error"] == "the broadcast is over"


async def test_a_public_broadcast_is_in_the_catalogue_only_while_it_is_live(tmp_path):
    from onionshare_bt.errors import UsageError
    from onionshare_bt.uri import cast_key

    wav = write_tones(tmp_path / "tones.wav", 0.25)
    async with FakeTor() as socks, services(socks, 1) as (caster,):
        with pytest.raises(UsageError, match="goes with --public"):
            await caster.cast(str(wav), 48, 2, description="x")
        with pytest.raises(UsageError, match="name"):
            await caster.cast(str(wav), 48, 2, public=True, name="bad\x1b[2Jname")
        private = await caster.cast(str(wav), 48, 2)
        public = await caster.cast(str(wav), 48, 2, public=True, description="six tones")
        assert caster.public_items() == [{
            "kind": "cast", "name": "tones", "size": 0, "files": 0,
            "infohash": cast_key(public["uri"]), "uri": public["uri"],
            "added": caster.public_items()[0]["added"], "description": "six tones"}]
        assert private["uri"] not in json.dumps(caster.public_items())
        await until(lambda: only_id(caster, public["id"])["state"] == "ended", 30, "the end")
        assert caster.public_items() == []  # over: no longer listed


def only_id(svc: CastService, ident: str) -> dict:
    return next(i for i in svc.list() if i["id"] == ident)
