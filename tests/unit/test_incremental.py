"""The ``incremental`` mark of the Tor tier's story modules (tests/tor/conftest.py): after a
failed step, the later steps of the module are reported failed, naming it, without running;
steps of unmarked modules, and of marked modules before any failure, run as usual."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = """
from tests.tor.conftest import (  # noqa: F401
    pytest_configure, pytest_runtest_call, pytest_runtest_makereport)
"""

STORY = """
import pytest

pytestmark = pytest.mark.incremental
RAN = {ran!r}


def test_first():
    open(RAN, "a").write("first ")


@pytest.mark.parametrize("n", [1, 2])
def test_second(n):
    open(RAN, "a").write(f"second{{n}} ")
    assert n == 1, "the story breaks here"


def test_third():
    open(RAN, "a").write("third ")
"""

PLAIN = """
RAN = {ran!r}


def test_fails():
    assert False


def test_runs_anyway():
    open(RAN, "a").write("plain ")
"""


def _run(tmp_path: Path, **modules: str) -> tuple[str, str]:
    ran = tmp_path / "ran"
    ran.write_text("")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    for name, text in modules.items():
        (tmp_path / f"{name}.py").write_text(text.format(ran=str(ran)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
         "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr, ran.read_text()


def test_steps_after_a_failed_one_fail_at_once_naming_it(tmp_path):
    out, ran = _run(tmp_path, test_story=STORY)
    assert ran.split() == ["first", "second1", "second2"]  # the third never ran
    assert "FAILED test_story.py::test_second[2] - AssertionError: the story breaks" in out
    assert "FAILED test_story.py::test_third - Failed: previous step test_second[2] failed" \
        in out
    assert "2 failed, 2 passed" in out
    assert "skipped" not in out and "xfail" not in out


def test_an_unmarked_module_runs_every_test(tmp_path):
    out, ran = _run(tmp_path, test_plain=PLAIN)
    assert ran.split() == ["plain"]
    assert "1 failed, 1 passed" in out
