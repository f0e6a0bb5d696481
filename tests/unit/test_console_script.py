"""The installed console script is the CLI (one subprocess test, as a user runs it)."""

import subprocess
import sys
from pathlib import Path

from onionshare_bt import __version__


def test_installed_obt_script_runs():
    script = Path(sys.executable).with_name("obt")
    assert script.exists(), "the package is not installed with its console script"
    env = {"NO_COLOR": "1", "COLUMNS": "80", "PATH": "/usr/bin:/bin"}
    version = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"obt, version {__version__}"
    usage = subprocess.run([str(script), "get"], capture_output=True, text=True, env=env,
                           timeout=60)
    assert usage.returncode == 2 and "Missing argument 'URI'" in usage.stderr
    bad = subprocess.run([str(script), "get", "http://nope.onion/private/x"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("obt: error:")
    assert "Traceback" not in bad.stderr
