"""Suite-wide: the leak check (see tests/leak.py).

Inside the sinkhole namespace (``bash test.sh``), every test module ends by asserting that
no packet tried to leave the namespace while it ran, and the session ends by asserting the
same for the whole run (less what the canary sends on purpose).
"""

from __future__ import annotations

import pytest

from tests import leak


@pytest.fixture(scope="session")
def sinkhole():
    """The running sinkhole, or None outside the namespace."""
    names = leak.active()
    if names is None:
        yield None
        return
    hole = leak.Sinkhole(*names)
    hole.start()
    start = hole.mark()
    hole.on_purpose = 0
    try:
        yield hole
        count, what = hole.report(start)
        assert count - hole.on_purpose == 0, _message("this test run", count - hole.on_purpose,
                                                      what)
    finally:
        hole.close()


@pytest.fixture(scope="module", autouse=True)
def no_leak(request, sinkhole):
    """Fail the module if anything tried to leave the namespace while it ran."""
    if sinkhole is None:
        yield
        return
    mark = sinkhole.mark()
    yield
    count, what = sinkhole.report(mark)
    if request.node.get_closest_marker("leaks_on_purpose"):
        sinkhole.on_purpose += count
        return
    assert count == 0, _message(request.node.name, count, what)


def _message(where: str, count: int, what: list[str]) -> str:
    lines = "\n  ".join(what[:20]) or "(nothing captured)"
    return f"{count} packet(s) tried to leave the namespace during {where}:\n  {lines}"
