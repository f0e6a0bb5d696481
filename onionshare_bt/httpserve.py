"""Hardening shared by every aiohttp server obt puts behind an onion.

The tracker (:mod:`.tracker.server`), the identity onion (:mod:`.trust.server`) and the
mirrors' trackers answer anyone who reaches the onion, so every reply they send is the same
for every node and says nothing about the machine:

- no ``Server`` header (aiohttp names itself and Python's version) and no ``Date`` header
  (a clock reading: its skew links an onion to other services of the same machine), on
  replies of our handlers (:func:`strip_headers`) *and* on aiohttp's own error replies to
  requests its parser refuses, which no application hook reaches (:class:`HardenedRunner`);
  those error replies also carry a fixed body instead of the parser's text;
- a quiet logger (:class:`NetworkLog`): aiohttp logs each malformed request at error level
  with the bytes received, and anyone can send those; a request line may carry a token.

Use :func:`runner` to build an ``AppRunner`` with all of it.
"""

from __future__ import annotations

import asyncio
import logging
from http import HTTPStatus

from aiohttp import web
from aiohttp import web_response as _web_response
from aiohttp.http import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

__all__ = ["KEEPALIVE_TIMEOUT", "NOT_FOUND_BODY", "HardenedRunner", "NetworkLog",
           "not_found", "read_body", "runner", "strip_headers"]

NOT_FOUND_BODY = "404: Not Found"
#: idle keep-alive connections close after this (aiohttp's default is an hour)
KEEPALIVE_TIMEOUT = 30
_IDENTIFYING = ("Server", "Date")

# aiohttp's default for the Server header, used where nothing else sets it: blank it too, so
# that a reply path this module misses still names no software
_web_response.SERVER_SOFTWARE = ""


def not_found() -> web.Response:
    """The plain 404 every unknown path, wrong token or method gets."""
    return web.Response(status=404, text=NOT_FOUND_BODY)


async def strip_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: drop the ``Server`` and ``Date`` headers."""
    for name in _IDENTIFYING:
        response.headers.popall(name, None)


class _BareResponse(web.Response):
    """A response that leaves with neither ``Server`` nor ``Date``, even where aiohttp
    adds them after every hook (its error replies)."""

    async def _prepare_headers(self) -> None:
        await super()._prepare_headers()
        for name in _IDENTIFYING:
            self.headers.popall(name, None)


class _Handler(RequestHandler):
    """aiohttp's protocol handler, with error replies that carry nothing identifying."""

    def handle_error(self, request, status: int = 500, exc=None, message=None):
        super().handle_error(request, status, exc, message)  # it logs (quietly) and checks
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        response = _BareResponse(status=status, text=f"{status}: {phrase}")
        response.force_close()
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class HardenedRunner(web.AppRunner):
    """An ``AppRunner`` whose connections use :class:`_Handler`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # same state, our handler factory
        return server


class NetworkLog(logging.LoggerAdapter):
    """The logger handed to aiohttp's protocol handler.

    aiohttp logs every malformed request at error level with the offending bytes; anyone can
    send those through an onion, and a request line may carry a share's token. Log their
    kind only, at debug level. Our own handlers' failures (bugs) keep their traceback.
    """

    def debug(self, msg, *args, exc_info=None, **kwargs) -> None:
        if isinstance(exc_info, BaseException):
            self.logger.debug("refused a malformed HTTP request (%s)", _kind(exc_info))
        else:
            self.logger.debug(msg, *args, **kwargs)

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.debug("refused a malformed HTTP request (%s)", _kind(exc_info))
        else:
            self.logger.error("request handler failed", exc_info=exc_info)


def _kind(exc_info: object) -> str:
    return type(exc_info).__name__ if isinstance(exc_info, BaseException) else "?"


def runner(app: web.Application, log: logging.Logger,
           keepalive_timeout: float = KEEPALIVE_TIMEOUT) -> HardenedRunner:
    """An ``AppRunner`` for ``app`` with every hardening of this module.

    :param log: the logger network noise and handler failures go to (quietly)
    """
    app.on_response_prepare.append(strip_headers)
    return HardenedRunner(app, access_log=None, handle_signals=False,
                          logger=NetworkLog(log, {}), keepalive_timeout=keepalive_timeout)


#: seconds a client may take to send a request body
BODY_TIMEOUT = 30.0


async def read_body(request: web.Request, limit: int, timeout: float = BODY_TIMEOUT
                    ) -> bytes | None:
    """The request's whole body, or None when it is larger than ``limit`` bytes (a declared
    ``Content-Length`` over the limit is refused before anything is read).

    :raises TimeoutError: the body did not arrive within ``timeout`` seconds
    """
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks, size = [], 0
    async with asyncio.timeout(timeout):
        while chunk := await request.content.read(64 * 1024):
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    return b"".join(chunks)
