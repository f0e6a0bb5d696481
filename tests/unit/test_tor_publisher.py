"""Stored onion services are published a few at a time: :mod:`onionshare_bt.tor.publisher`."""
import asyncio

from onionshare_bt.errors import TorError
from onionshare_bt.tor.publisher import Publisher


class FakeTor:
    """Records ADD/DEL_ONION; a service is published when the test says so."""

    def __init__(self, refuse: frozenset[str] = frozenset()) -> None:
        self.answer = asyncio.Event()  # tor answers ADD_ONION once it is set
        self.answer.set()
        self.added: list[str] = []
        self.removed: list[str] = []
        self.refuse = refuse
        self.done: dict[str, asyncio.Event] = {}
        self.most_at_once = 0

    def publishing(self) -> int:
        return sum(1 for a in self.added if not self.done[a].is_set() and a not in self.removed)

    async def add(self, ports, key) -> None:
        await self.answer.wait()
        if key in self.refuse:
            raise TorError("tor refused the request")
        self.added.append(key)  # the tests use the address as the key
        self.done.setdefault(key, asyncio.Event())
        self.most_at_once = max(self.most_at_once, self.publishing())

    async def remove(self, address) -> None:
        self.removed.append(address)

    async def published(self, address, timeout) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self.done[address].wait()
            return True
        except TimeoutError:
            return False


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_at_most_a_window_is_published_at_once_and_the_next_goes_when_one_is_done():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=3, slot=60)
        for i in range(7):
            pub.put(f"o{i}", {80: ("127.0.0.1", 1)}, f"o{i}")
        await _settle()
        assert tor.added == ["o0", "o1", "o2"] and pub.waiting == 4
        tor.done["o1"].set()
        await _settle()
        assert tor.added == ["o0", "o1", "o2", "o3"]
        for i in range(7):
            tor.done.setdefault(f"o{i}", asyncio.Event()).set()
            await _settle()
        assert tor.added == [f"o{i}" for i in range(7)] and pub.waiting == 0
        assert tor.most_at_once == 3
        await pub.close()
    asyncio.run(run())


def test_a_service_never_published_gives_its_place_up_after_the_slot_time():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=1, slot=0.05, retries=0)
        pub.put("a", {}, "a")
        pub.put("b", {}, "b")
        await _settle()
        assert tor.added == ["a"]
        await asyncio.sleep(0.2)
        assert tor.added == ["a", "b"] and tor.removed == []
        await pub.close()
    asyncio.run(run())


def test_a_refused_service_does_not_stop_the_others():
    async def run():
        tor = FakeTor(refuse=frozenset({"bad"}))
        pub = Publisher(tor.add, tor.remove, tor.published, window=1, slot=60)
        for key in ("bad", "good"):
            pub.put(key, {}, key)
        await _settle()
        assert tor.added == ["good"]
        await pub.close()
    asyncio.run(run())


def test_a_withdrawn_service_is_never_added_or_is_removed_once_added():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=1, slot=60)
        tor.answer.clear()
        for key in ("a", "b", "c"):
            pub.put(key, {}, key)
        await _settle()
        assert pub.withdraw("a") is True  # being added: removed as soon as tor has it
        assert pub.withdraw("b") is True  # queued: never added
        tor.answer.set()
        await _settle()
        assert tor.added == ["a", "c"] and tor.removed == ["a"]
        assert pub.withdraw("c") is False  # tor has it: the caller removes it
        assert pub.withdraw("zzz") is False
        await pub.close()
    asyncio.run(run())


def test_close_drops_the_queue_and_a_later_put_starts_again():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=1, slot=60)
        pub.put("a", {}, "a")
        pub.put("b", {}, "b")
        await _settle()
        await pub.close()
        assert tor.added == ["a"] and pub.waiting == 0
        pub.put("c", {}, "c")
        await _settle()
        assert tor.added == ["a", "c"]
        await pub.close()
    asyncio.run(run())


def test_a_service_not_published_in_its_slot_is_added_again_a_bounded_number_of_times():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=2, slot=0.05, retries=2)
        pub.put("stuck", {}, "stuck")
        pub.put("fine", {}, "fine")
        await _settle()
        tor.done["fine"].set()
        await asyncio.sleep(0.5)
        assert tor.added.count("stuck") == 3 and tor.removed == ["stuck", "stuck"]
        assert tor.added.count("fine") == 1 and pub.waiting == 0
        await pub.close()
    asyncio.run(run())


def test_a_service_removed_while_it_waits_for_publication_is_not_added_again():
    async def run():
        tor = FakeTor()
        pub = Publisher(tor.add, tor.remove, tor.published, window=1, slot=0.1, retries=2)
        pub.put("a", {}, "a")
        await _settle()
        assert pub.withdraw("a") is False  # tor has it: the caller removes it
        await asyncio.sleep(0.3)
        assert tor.added == ["a"] and tor.removed == [] and pub.waiting == 0
        await pub.close()
    asyncio.run(run())
