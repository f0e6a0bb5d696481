"""Services a descriptor of which was lost are renewed: :mod:`onionshare_bt.tor.rescue`,
fed by :mod:`onionshare_bt.tor.uploads` through :class:`~onionshare_bt.tor.publication.Publication`."""
import asyncio

from onionshare_bt.tor.publication import HELD, Publication
from onionshare_bt.tor.rescue import Rescue
from onionshare_bt.tor.uploads import GIVE_UP

A, B, C = "a" * 56, "b" * 56, "c" * 56
HSDIRS = [f"$H{i}" for i in range(3)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _lose(publication: Publication, address: str, reason: str = "UNEXPECTED") -> None:
    for hsdir in HSDIRS:
        publication.started(address, hsdir, "blinded-next")
    for hsdir in HSDIRS:
        publication.failed(address, hsdir, reason)


def test_a_hosted_service_with_a_lost_descriptor_is_renewed_once():
    clock = Clock()
    publication, renewed = Publication(clock), []
    rescue = Rescue(publication.lost, lambda _a: False,
                    lambda address, ports, key: renewed.append((address, ports, key)))
    rescue.hosted(A, {80: ("127.0.0.1", 1)}, "key-a")
    rescue.hosted(B, {80: ("127.0.0.1", 2)}, "key-b")
    rescue.hosted(C, {80: ("127.0.0.1", 3)}, "key-c")
    _lose(publication, A)
    _lose(publication, B, reason=HELD)  # every HSDir already held it: not lost
    _lose(publication, C)
    rescue.dropped(C)  # removed by the node meanwhile
    assert rescue.sweep() == [A]
    assert renewed == [(A, {80: ("127.0.0.1", 1)}, "key-a")] and rescue.renewed == 1
    assert rescue.sweep() == []


def test_a_service_the_publisher_is_busy_with_waits_for_a_later_sweep():
    clock = Clock()
    publication, busy, renewed = Publication(clock), {A}, []
    rescue = Rescue(publication.lost, busy.__contains__,
                    lambda address, ports, key: renewed.append(address))
    rescue.hosted(A, {}, "key-a")
    for hsdir in HSDIRS:
        publication.started(A, hsdir, "blinded-next")  # never answered
    clock.now = GIVE_UP + 1
    assert rescue.sweep() == []
    busy.clear()
    assert rescue.sweep() == [A] and renewed == [A]


def test_the_sweep_runs_on_the_loop_until_closed():
    async def run():
        publication, renewed = Publication(Clock()), []
        rescue = Rescue(publication.lost, lambda _a: False,
                        lambda address, ports, key: renewed.append(address), every=0.01)
        rescue.hosted(A, {}, "key-a")
        rescue.start()
        _lose(publication, A)
        async with asyncio.timeout(5):
            while not renewed:
                await asyncio.sleep(0.01)
        await rescue.close()
        _lose(publication, A)
        await asyncio.sleep(0.05)
        assert renewed == [A]
    asyncio.run(run())
