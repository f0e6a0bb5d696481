"""What every command shares: the invocation's state, the error dispatcher, common options.

:func:`command` is the one error dispatcher: every :class:`~onionshare_bt.errors.ObtError`
a command raises becomes ``obt: error: <message>`` plus a hint on stderr and its exit code
(tracebacks only with ``--debug``); Ctrl-C is exit status 130. Nothing else in the CLI
exits: a command that must end with a status raises an error of the tree.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys

import click

from ..errors import ExitCode, ObtError
from .render import err


class State:
    """The root options of one invocation, and the configuration they select (loaded on
    first use, with ``flags`` set by a command before that)."""

    def __init__(self, home, network, debug, quiet):
        self.home, self.network, self.debug, self.quiet = home, network, debug, quiet
        self.flags: dict = {}
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from .. import config

            self._config = config.load(home=self.home, network=self.network, **self.flags)
        return self._config

    def progress(self, as_json: bool) -> bool:
        """Whether to draw progress: stderr is a terminal, and neither --json nor -q."""
        return sys.stderr.isatty() and not as_json and not self.quiet


def log_to_stderr(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)  # stem sets its own logger to DEBUG: filter at the handler
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("stem").setLevel(max(level, logging.INFO))


def _fail(exc: ObtError, debug: bool) -> None:
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    if not exc.silent:
        err(f"error: {exc.message}")
        if exc.hint:
            err(f"hint: {exc.hint}")
    sys.exit(int(exc.exit_code))


def command(fn):
    """Run a command body (async or not) and map its errors to messages and exit codes."""

    @functools.wraps(fn)
    @click.pass_obj
    def wrapper(state: State, *args, **kwargs):
        try:
            result = fn(state, *args, **kwargs)
            if asyncio.iscoroutine(result):
                result = asyncio.run(result)
        except ObtError as exc:
            _fail(exc, state.debug)
        except KeyboardInterrupt:
            err("interrupted")
            sys.exit(int(ExitCode.INTERRUPTED))
        return result

    return wrapper


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
torrent_out_option = click.option(
    "--torrent-out", type=click.Path(dir_okay=False), default=None, metavar="FILE",
    help="Also write the .torrent to FILE (it names the share's onion trackers).")
