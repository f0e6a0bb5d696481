"""Errors cross the control socket as ``{"kind", "message", "hint"}`` and are rebuilt by
:func:`onionshare_bt.errors.from_dict` in the CLI with their kind and exit code."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import onionshare_bt
from onionshare_bt import errors


#: every error class errors.py declares, by kind
DECLARED = {c.kind: c for c in vars(errors).values()
            if isinstance(c, type) and issubclass(c, errors.ObtError)}


# onion_unreachable's round trip also once every module is imported: the test below
@pytest.mark.parametrize("kind", sorted(set(DECLARED) - {"onion_unreachable"}))
def test_every_kind_declared_in_errors_round_trips(kind):
    original = DECLARED[kind]("the message", hint="the hint")
    again = errors.from_dict(original.to_dict())
    assert (type(again).kind, again.message, again.hint, again.exit_code) == (
        kind, "the message", "the hint", original.exit_code)


def test_an_onion_unreachable_error_round_trips_once_every_module_is_imported():
    for info in pkgutil.walk_packages(onionshare_bt.__path__, "onionshare_bt."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    errors._KINDS.clear()  # collected afresh, as in a process that imported them first
    again = errors.from_dict(errors.OnionUnreachable("gone", hint="h").to_dict())
    assert isinstance(again, errors.OnionUnreachable) and again.message == "gone"
