"""Shared fixtures of the integration tier: real libtorrent sessions, no Tor."""

from __future__ import annotations

import pytest

from onionshare_bt.engine.session import Engine


@pytest.fixture
def events() -> list:
    """The engine events of ``engines[0]``, in order."""
    return []


@pytest.fixture
async def engines(events):
    """Two started engines; the first records its events in ``events``."""
    made = [Engine(on_event=events.append), Engine()]
    for engine in made:
        await engine.start()
    yield made
    for engine in made:
        await engine.close()
