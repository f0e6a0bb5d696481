"""Who may talk to the web UI: one-time link tokens, sessions, and the checks every request
passes (pure: no sockets; the clock is given).

- A link token (``obt ui``) is good once, for :data:`LINK_TTL` seconds; it is exchanged for
  a session, whose id travels only in an HttpOnly SameSite=Strict cookie. A session ends
  after :data:`SESSION_IDLE` seconds without a request, and :data:`SESSION_MAX` seconds after
  it began, whatever it did: then a new ``obt ui`` link is needed.
- Every request names one of the UI's own hosts (``127.0.0.1:<port>``, ``localhost:<port>``
  or the UI's onion): a page some other site's name resolves to loopback (DNS rebinding)
  gets nothing.
- A POST comes from the UI's own origin (its ``Origin`` header) and carries its session's
  CSRF token.

Tokens and session ids are 256-bit, compared in constant time, and never logged.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
from collections.abc import Callable

#: seconds a link from ``obt ui`` stays good (it is good once)
LINK_TTL = 600.0
#: seconds a session lasts without a request (a live page's event stream is one request)
SESSION_IDLE = 3600.0
#: seconds a session lasts at most
SESSION_MAX = 12 * 3600.0
#: sessions kept at once; the oldest goes first
MAX_SESSIONS = 32
#: links outstanding at once; the oldest goes first
MAX_LINKS = 32
COOKIE = "obt_ui"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    # not no-referrer: with it Chromium sends "Origin: null" on form POSTs
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def secure(resp):
    """Put :data:`HEADERS` on a response (before it is sent); the response."""
    for name, value in HEADERS.items():
        resp.headers[name] = value
    return resp


def _find(table: dict[str, object], candidate: str) -> str | None:
    """The key of ``table`` equal to ``candidate`` (every key compared, in constant time)."""
    found = None
    for key in list(table):
        if hmac.compare_digest(key.encode(), candidate.encode()):
            found = key
    return found


@dataclasses.dataclass
class Session:
    id: str
    csrf: str
    created: float
    #: when it last made a request
    seen: float = 0.0
    #: messages shown once, on the next page (post-redirect-get)
    flash: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def say(self, kind: str, text: str) -> None:
        self.flash.append((kind, text))
        del self.flash[:-8]

    def take_flash(self) -> list[tuple[str, str]]:
        out, self.flash = self.flash, []
        return out

    def csrf_ok(self, candidate: object) -> bool:
        return isinstance(candidate, str) and hmac.compare_digest(
            candidate.encode(), self.csrf.encode())


class Gate:
    """Link tokens and sessions of one UI.

    :param clock: wall-clock seconds (``time.time``)
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._links: dict[str, float] = {}  # token -> expiry
        self._sessions: dict[str, Session] = {}

    def new_link(self) -> tuple[str, float]:
        """A fresh one-time token and when it expires."""
        now = self._clock()
        self._links = {t: e for t, e in self._links.items() if e > now}
        while len(self._links) >= MAX_LINKS:
            self._links.pop(next(iter(self._links)))
        token = secrets.token_urlsafe(32)
        self._links[token] = now + LINK_TTL
        return token, self._links[token]

    def redeem(self, token: str) -> Session | None:
        """Exchange a link token for a new session; None if it is unknown, used or old."""
        key = _find(self._links, token)
        if key is None:
            return None
        expiry = self._links.pop(key)
        now = self._clock()
        if expiry <= now:
            return None
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now)
        self._sessions[session.id] = session
        return session

    def session(self, session_id: str | None) -> Session | None:
        """The live session ``session_id`` names (and it is seen now); None if there is
        none, or it ended (idle for :data:`SESSION_IDLE`, or older than :data:`SESSION_MAX`)."""
        if not session_id:
            return None
        now = self._clock()
        for sid in [k for k, s in self._sessions.items() if not _alive(s, now)]:
            del self._sessions[sid]
        key = _find(self._sessions, session_id)
        if key is None:
            return None
        session = self._sessions[key]
        session.seen = now
        return session

    def keep(self, session: Session) -> bool:
        """A live page's event stream is activity: ``session`` is seen now. False once it
        ended (the stream then ends too)."""
        now = self._clock()
        if self._sessions.get(session.id) is not session or not _alive(session, now):
            return False
        session.seen = now
        return True


def _alive(session: Session, now: float) -> bool:
    return now - session.seen < SESSION_IDLE and now - session.created < SESSION_MAX


def host_allowed(host: str | None, port: int, onion: str | None) -> bool:
    """``host`` (a Host header) names this UI: loopback on its port, or its onion."""
    if not host:
        return False
    host = host.lower()
    names = {f"127.0.0.1:{port}", f"localhost:{port}"}
    if onion:
        names |= {f"{onion}.onion", f"{onion}.onion:80"}
    return host in names


def origin_allowed(origin: str | None, host: str) -> bool:
    """A POST's ``Origin`` is the UI's own (the host it was sent to, already checked)."""
    if not origin:
        return False
    host = host.lower()
    if host.endswith(":80"):
        host = host[:-3]
    return origin.lower() in (f"http://{host}", f"http://{host}:80")
