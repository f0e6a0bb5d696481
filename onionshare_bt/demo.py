"""The demo (``./demo.sh``): a private Tor network, two nodes, a share and a fetch.

Everything runs through the real ``obt`` command line, exactly as a user would type it:
``obt testnet up``, ``obt share`` on node A, ``obt get`` on node B (with a progress bar when
stderr is a terminal), then the checksums of both copies, then everything is torn down.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path


def say(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def obt(*args: str, home: Path | None = None, capture: bool = True, check: bool = True):
    cmd = [sys.executable, "-m", "onionshare_bt", *args]
    env = dict(os.environ)
    if home is not None:
        env["OBT_HOME"] = str(home)
    proc = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo: '{' '.join(cmd[2:])}' failed with exit code {proc.returncode}")
    return proc.stdout.strip() if capture else proc.returncode


def make_sample(root: Path, size_mb: int) -> Path:
    sample = root / "sample-share"
    (sample / "docs" / "notes").mkdir(parents=True)
    (sample / "docs" / "notes" / "résumé — été.txt").write_text("Bonjour, Tor!\n", "utf-8")
    (sample / "docs" / "empty.txt").write_bytes(b"")
    (sample / "README.txt").write_text("A folder shared with obt over onion services.\n")
    with open(sample / "video.bin", "wb") as f:
        for _ in range(size_mb):
            f.write(secrets.token_bytes(1024 * 1024))
    return sample


def tree_digest(root: Path) -> str:
    """One sha256 over every file's relative path and content, in sorted order."""
    total = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        total.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                total.update(chunk)
    return total.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", default=".obt-demo", help="working folder (wiped first)")
    parser.add_argument("--size-mb", type=int, default=24)
    parser.add_argument("--base-port", type=int, default=17500)
    args = parser.parse_args(argv)
    work = Path(args.dir).resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    net_root, home_a, home_b = work / "testnet", work / "node-a", work / "node-b"
    started = time.monotonic()
    try:
        say("bringing up a private Tor network on 127.0.0.1 (3 authorities, 4 relays)")
        network = obt("testnet", "up", "--root", str(net_root), "--base-port", str(args.base_port))
        os.environ["OBT_NETWORK"] = network
        sample = make_sample(work, args.size_mb)
        say(f"node A shares {sample} ({args.size_mb} MB and a few small files)")
        uri = obt("share", str(sample), home=home_a)
        print(uri, flush=True)
        say("node B fetches it through Tor")
        obt("get", uri, "-o", str(work / "downloads"), home=home_b, capture=False)
        theirs, ours = tree_digest(sample), tree_digest(work / "downloads" / sample.name)
        print(f"sha256 (shared)     {theirs}")
        print(f"sha256 (downloaded) {ours}")
        if theirs != ours:
            say("MISMATCH: the copies differ")
            return 1
        say(f"verified: byte-identical ({time.monotonic() - started:.0f} s in all)")
        return 0
    finally:
        say("tearing down the nodes and the network")
        for home in (home_a, home_b):
            if home.exists():
                obt("node", "stop", home=home, check=False)
        if net_root.exists():
            obt("testnet", "down", "--root", str(net_root), check=False)


if __name__ == "__main__":
    sys.exit(main())
