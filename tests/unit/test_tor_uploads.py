"""When an onion service counts as published: :class:`onionshare_bt.tor.uploads.Uploads`."""
from onionshare_bt.tor.uploads import BEHIND, GIVE_UP, KEPT_DESCRIPTORS, Uploads

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


# -- lost descriptors: every upload ended, none reached an HSDir ------------------------
CURRENT, NEXT = "blinded-current", "blinded-next"


def test_a_descriptor_whose_every_upload_failed_is_lost_and_told_once():
    uploads = Uploads()
    for hsdir in HSDIRS:
        uploads.started(A, hsdir, 0.0, CURRENT)
        uploads.stored(A, hsdir)
    for hsdir in HSDIRS:  # a time period turns: the descriptor for the period after next
        uploads.started(A, hsdir, 10.0, NEXT)
    uploads.failed(A, HSDIRS[0])
    assert uploads.lost(now=11.0) == []  # its other uploads are still under way
    for hsdir in HSDIRS[1:]:
        uploads.failed(A, hsdir)  # e.g. a directory connection tor gave up on
    assert uploads.lost(now=12.0) == [A]
    assert uploads.lost(now=13.0) == []  # told once
    uploads.started(A, HSDIRS[0], 14.0, NEXT)  # tor uploads it again (HSDirs changed)
    uploads.failed(A, HSDIRS[0])
    assert uploads.lost(now=15.0) == [A]


def test_one_stored_upload_or_one_hsdir_already_holding_it_means_not_lost():
    uploads = Uploads()
    for hsdir in HSDIRS[:3]:
        uploads.started(A, hsdir, 0.0, CURRENT)
        uploads.started(B, hsdir, 0.0, CURRENT)
    uploads.stored(A, HSDIRS[0])
    uploads.failed(A, HSDIRS[1])
    uploads.failed(A, HSDIRS[2])
    uploads.failed(B, HSDIRS[0], held=True)  # UPLOAD_REJECTED: that HSDir has it
    uploads.failed(B, HSDIRS[1])
    uploads.failed(B, HSDIRS[2])
    assert uploads.lost(now=1.0) == []
    # a later partial upload of a descriptor that reached an HSDir once: not lost either
    uploads.started(A, HSDIRS[3], 2.0, CURRENT)
    uploads.failed(A, HSDIRS[3])
    assert uploads.lost(now=3.0) == []


def test_uploads_tor_never_answers_make_a_descriptor_lost_after_the_give_up_time():
    uploads = Uploads()
    for hsdir in HSDIRS:
        uploads.started(A, hsdir, 0.0, NEXT)
    assert uploads.lost(now=GIVE_UP - 1) == []
    assert uploads.lost(now=GIVE_UP + 1) == [A]


def test_a_skipped_service_is_looked_at_again_later_and_a_forgotten_one_never():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0, NEXT)
    uploads.failed(A, HSDIRS[0])
    uploads.started(B, HSDIRS[0], 0.0, NEXT)
    uploads.failed(B, HSDIRS[0])
    assert uploads.lost(now=1.0, skip=lambda address: address == A) == [B]
    assert uploads.lost(now=2.0) == [A]
    uploads.started(A, HSDIRS[0], 3.0, CURRENT)
    uploads.forget(A)
    assert uploads.lost(now=GIVE_UP * 2) == []


def test_only_the_last_few_descriptors_of_a_service_are_remembered():
    uploads = Uploads()
    uploads.started(A, HSDIRS[0], 0.0, "period-0")  # never answered
    for period in range(1, KEPT_DESCRIPTORS + 1):
        uploads.started(A, HSDIRS[1], float(period), f"period-{period}")
        uploads.stored(A, HSDIRS[1])
    assert uploads.lost(now=GIVE_UP * 2) == []  # period 0 is forgotten, not lost
    uploads.started(A, HSDIRS[2], GIVE_UP * 2, "again")
    uploads.failed(A, HSDIRS[2])
    assert uploads.lost(now=GIVE_UP * 2 + 1) == [A]


def test_an_upload_that_reached_an_hsdir_counts_for_each_descriptor_sent_there_with_it():
    """tor does not say which upload to an HSDir ended: a stored one may be either."""
    uploads = Uploads()
    for hsdir in HSDIRS:
        uploads.started(A, hsdir, 0.0, CURRENT)
        uploads.started(A, hsdir, 0.0, NEXT)
    for hsdir in HSDIRS:
        uploads.stored(A, hsdir)  # the next descriptor's, perhaps, and the current's failed
        uploads.failed(A, hsdir)
    assert uploads.lost(now=1.0) == []


def test_tor_is_behind_while_uploads_wait_longer_than_a_minute_and_not_yet_given_up():
    uploads = Uploads()
    _burst(uploads, A, now=0.0)
    uploads.started(B, HSDIRS[0], 30.0, NEXT)
    assert uploads.behind(now=BEHIND - 1) == 0  # young uploads: tor is at work
    assert uploads.behind(now=BEHIND + 1) == 2 * len(HSDIRS)
    for hsdir in HSDIRS:  # answered, stored or not, they no longer count
        uploads.stored(A, hsdir)
        uploads.failed(A, hsdir)
    assert uploads.behind(now=BEHIND + 1) == 0
    assert uploads.behind(now=30.0 + BEHIND + 1) == 1  # B's, still unanswered
    assert uploads.behind(now=30.0 + GIVE_UP + 1) == 0  # given up: ended, not behind
