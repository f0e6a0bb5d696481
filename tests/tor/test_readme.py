"""The README's demo command, run as a new user would run it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_exactly_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "bash demo.sh" in readme and "bash test.sh" in readme
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert ci[-1].strip() == "bash test.sh"


def test_demo_command_shares_and_fetches_byte_identical(tmp_path):
    proc = subprocess.run(
        ["bash", str(ROOT / "demo.sh"), "--dir", str(tmp_path / "demo"), "--base-port", "18700",
         "--size-mb", "8"],
        capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"http://[a-z2-7]{56}\.onion/private/\S+", proc.stdout)
    sums = re.findall(r"sha256 \((shared|downloaded)\) +([0-9a-f]{64})", proc.stdout)
    assert len(sums) == 2 and sums[0][1] == sums[1][1]
    assert "verified: byte-identical" in proc.stderr
    assert "tearing down" in proc.stderr
    assert not list((tmp_path / "demo").glob("node-*/node.pid"))  # both nodes stopped
