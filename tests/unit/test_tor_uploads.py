"""When an onion service counts as published: :class:`onionshare_bt.tor.uploads.Uploads`."""
from onionshare_bt.tor.uploads import GIVE_UP, Uploads

A, B = "a" * 56, "b" * 56
HSDIRS = [f"$H{i}" for i in range(7)]


def _burst(uploads: Uploads, address: str, now: float = 0.0) -> None:
    """tor starts both descriptors' uploads to every HSDir at once, as after a restart."""
    for _descriptor in ("current", "next"):
        for hsdir in HSDIRS:
            uploads.started(address, hsdir, now)


def test_the_first_stored_upload_is_not_publication_while_others_are_under_way():
    uploads = Uploads()
    _burst(uploads, A)
    assert uploads.stored(A, HSDIRS[0]) is True  # first since start
    assert uploads.uploaded_once(A) and not uploads.published(A, now=1.0)
    for i, hsdir in enumerate(HSDIRS):
        for _descriptor in ("current", "next"):
            if (i, _descriptor) != (0, "current"):
                assert not uploads.published(A, now=1.0)
                assert uploads.stored(A, hsdir) is False
    assert uploads.published(A, now=1.0)


def test_a_failed_upload_ends_it_but_failures_alone_publish_nothing():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0)
    uploads.failed(A, HSDIRS[0])
    assert not uploads.published(A, now=1.0)  # nothing stored anywhere
    uploads.started(A, HSDIRS[1], 2.0)
    uploads.started(A, HSDIRS[2], 2.0)
    uploads.stored(A, HSDIRS[1])
    uploads.failed(A, HSDIRS[2])  # e.g. UPLOAD_REJECTED: that HSDir had it already
    assert uploads.published(A, now=3.0)


def test_a_fetch_failure_or_another_services_event_changes_nothing():
    uploads = Uploads()
    _burst(uploads, A)
    uploads.failed(B, HSDIRS[0])  # a fetch of an onion this tor does not host
    uploads.stored(B, HSDIRS[0])
    for hsdir in HSDIRS:
        uploads.failed(A, "$ELSEWHERE")
    assert not uploads.published(A, now=1.0) and uploads.published(B, now=1.0)


def test_an_upload_tor_never_answers_counts_as_ended_after_the_give_up_time():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0)
    uploads.started(A, HSDIRS[1], 0.0)
    uploads.stored(A, HSDIRS[0])
    assert not uploads.published(A, now=GIVE_UP - 1)
    assert uploads.published(A, now=GIVE_UP + 1)


def test_a_later_upload_wave_leaves_a_published_service_published():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0)
    uploads.stored(A, HSDIRS[0])
    assert uploads.published(A, now=1.0)
    uploads.started(A, HSDIRS[0], 60.0)  # a new time period: the stored ones still serve
    assert uploads.published(A, now=61.0)


def test_forget_drops_everything():
    uploads = Uploads()
    _burst(uploads, A)
    uploads.stored(A, HSDIRS[0])
    uploads.forget(A)
    assert not uploads.uploaded_once(A) and not uploads.published(A, now=GIVE_UP * 2)


def test_a_round_started_after_the_first_store_does_not_hold_publication_back():
    """A time period turns while the first round is still being answered: the new round's
    uploads (which tor may leave unanswered for minutes) do not count, the first round's do."""
    uploads = Uploads()
    _burst(uploads, A, now=0.0)
    uploads.stored(A, HSDIRS[0])  # the first round is the 14 started so far
    _burst(uploads, A, now=30.0)  # the turn: 14 more, never answered
    for i, hsdir in enumerate(HSDIRS):
        for _descriptor in ("current", "next"):
            if (i, _descriptor) != (0, "current"):
                assert not uploads.published(A, now=31.0)
                uploads.stored(A, hsdir)
    assert uploads.published(A, now=31.0)


def test_the_first_round_still_counts_when_a_later_one_has_begun():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0)
    uploads.started(A, HSDIRS[1], 0.0)
    uploads.stored(A, HSDIRS[0])
    uploads.started(A, HSDIRS[0], 30.0)  # a later round, answered at once
    uploads.stored(A, HSDIRS[0])
    assert not uploads.published(A, now=31.0)  # HSDIRS[1] may still hold the old descriptor
    uploads.failed(A, HSDIRS[1])
    assert uploads.published(A, now=32.0)
