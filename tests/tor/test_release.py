"""Issue 6/6, releases: signed releases spread over the trust network, never installed.

D holds a release signed with the test maintainer key; A trusts D and runs ``obt update
check``: it is fetched, verified, seeded, and its sha256 printed. F is a hostile node A also
trusts: first it offers a release signed with another key, then (its state database edited,
as an attacker can) one signed with the right key whose wheel does not match the manifest.
Both are refused and never seeded, and nothing of any release is ever run or installed.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import time
import zipfile

import pytest

from onionshare_bt.release import core
from onionshare_bt.release.service import release_id
from onionshare_bt.store import ReleaseRow, Store
from onionshare_bt.tracker.client import TrackerClient
from onionshare_bt.uri import parse_uri

from .conftest import Node

#: one story: each step relies on the ones before (see conftest.py)
pytestmark = pytest.mark.incremental


def build(root, version: str, marker) -> list:
    """An sdist and a wheel that would write ``marker`` if anything ran them."""
    root.mkdir(parents=True, exist_ok=True)
    evil = f"open({str(marker)!r}, 'w').write('executed')\n"
    sdist = root / f"obt-{version}.tar.gz"
    import io
    import tarfile

    with tarfile.open(sdist, "w:gz") as tar:
        data = evil.encode()
        info = tarfile.TarInfo(f"obt-{version}/setup.py")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    wheel = root / f"obt-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("obt_release_probe/__init__.py", evil)
    return [sdist, wheel]


@pytest.fixture(scope="module")
def releases(tmp_path_factory, testnet):
    root = tmp_path_factory.mktemp("release")
    marker = root / "EXECUTED"
    key, attacker = root / "maintainer.key", root / "attacker.key"
    for path in (key, attacker):
        core.write_key(path, core.generate_seed())
    public = core.public_key(core.read_key(key)).hex()
    nodes = {n: Node(root / n, testnet) for n in "adf"}
    nodes["a"].configure(release_keys=[public], trust_timeout=15)
    nodes["d"].configure(release_keys=[public])
    nodes["f"].configure(release_keys=[core.public_key(core.read_key(attacker)).hex()])
    for node in nodes.values():
        node.start()
    ids = {n: node.json("node", "id")["onion"] for n, node in nodes.items()}
    a = nodes["a"]
    a.json("trust", "add", ids["d"])
    a.json("trust", "add", ids["f"])
    made = nodes["d"].json("release", "make", *map(str, build(root / "dist", "9.9.9", marker)),
                           "--version", "9.9.9", "--key", str(key), "-o", str(root / "out"))
    published = nodes["d"].json("release", "publish", made["folder"])
    yield {"nodes": nodes, "ids": ids, "root": root, "marker": marker, "key": key,
           "attacker": attacker, "made": made, "published": published}
    for node in nodes.values():
        node.stop()


def observe(node: Node, uri: str, infohash: str) -> set[str]:
    """The onions a share's tracker lists, asked through ``node``'s tor as an observer."""
    socks = tuple(node.json("node", "status")["tor"]["socks"])

    async def run():
        http = TrackerClient(socks)
        await http.start()
        try:
            reply = await http.announce(parse_uri(uri), {
                "info_hash": bytes.fromhex(infohash), "peer_id": b"-observer-0123456789",
                "uploaded": 0, "downloaded": 0, "left": 0, "numwant": 200}, 60)
            return {o for o, _ in reply.peers}
        finally:
            await http.close()
    return asyncio.run(run())


def nothing_ran(releases) -> None:
    assert not releases["marker"].exists()
    assert importlib.util.find_spec("obt_release_probe") is None


def test_publish_refuses_a_folder_that_does_not_verify(releases, tmp_path):
    d = releases["nodes"]["d"]
    files = build(tmp_path / "dist", "9.9.8", releases["marker"])
    folder = core.make_release(files, "9.9.8", core.read_key(releases["attacker"]), tmp_path)
    proc = d.run("release", "publish", str(folder))
    assert proc.returncode == 5
    assert "signature does not verify" in proc.stderr
    assert [r["version"] for r in d.json("release", "list")] == ["9.9.9"]


def test_update_check_fetches_verifies_and_seeds_the_signed_release(releases):
    a, d = releases["nodes"]["a"], releases["nodes"]["d"]
    made, published = releases["made"], releases["published"]
    proc = a.run("update", "check")
    assert proc.returncode == 0, proc.stderr + a.log()
    for entry in made["files"]:
        assert f"sha256 {entry['sha256']}  {entry['name']}" in proc.stdout
    assert "Nothing was installed" in proc.stdout
    held = a.json("release", "list")
    assert [(r["version"], r["state"]) for r in held] == [("9.9.9", "verified")]
    folder = a.home / "releases" / "obt-9.9.9"
    assert held[0]["path"] == str(folder)
    for entry in made["files"]:
        assert hashlib.sha256((folder / entry["name"]).read_bytes()).hexdigest() == \
            entry["sha256"]
    # A seeds it: its onions are in the swarm at D's tracker, and A offers it on /node
    row = next(r for r in a.json("list") if r["id"] == published["torrent_id"])
    assert row["state"] == "complete" and row["onions"]
    listed = observe(a, published["uri"], published["torrent_id"])
    assert {o.removesuffix(".onion") for o in row["onions"]} <= listed
    status, body = d.fetch_torrent(f"http://{releases['ids']['a']}/node")
    assert status == 200 and json.loads(body)["release"]["version"] == "9.9.9"
    # asked again: nothing newer
    again = a.json("update", "check")
    assert again["release"] is None and again["current"] == "9.9.9"
    nothing_ran(releases)


def test_a_release_with_a_bad_signature_is_refused_before_any_fetch(releases):
    a, f = releases["nodes"]["a"], releases["nodes"]["f"]
    made = f.json("release", "make", *map(str, build(releases["root"] / "dist-f", "9.9.10",
                                                     releases["marker"])),
                  "--version", "9.9.10", "--key", str(releases["attacker"]),
                  "-o", str(releases["root"] / "out-f"))
    f.json("release", "publish", made["folder"])  # F trusts its own key
    before = {r["id"] for r in a.json("list")}
    proc = a.run("update", "check")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "9.9.10" in proc.stderr and "signature does not verify" in proc.stderr
    assert {r["id"] for r in a.json("list")} == before
    assert not (a.home / "releases" / "obt-9.9.10").exists()
    states = {r["version"]: r["state"] for r in a.json("release", "list")}
    assert states == {"9.9.9": "verified", "9.9.10": "refused"}
    nothing_ran(releases)


def test_a_release_whose_file_differs_from_its_manifest_is_refused_and_deleted(releases):
    a, f = releases["nodes"]["a"], releases["nodes"]["f"]
    root = releases["root"]
    files = build(root / "dist-t", "9.9.11", releases["marker"])
    folder = core.make_release(files, "9.9.11", core.read_key(releases["key"]), root / "out-t")
    wheel = folder / files[1].name
    data = bytearray(wheel.read_bytes())
    data[-1] ^= 0xFF  # same size, one byte off: the manifest's sha256 no longer matches
    wheel.write_bytes(bytes(data))
    share = f.json("share", str(folder))
    f.stop()
    manifest, signature = (folder / core.MANIFEST).read_bytes(), (folder / core.SIGNATURE).read_bytes()
    store = Store(f.home / "state.sqlite3")  # the attacker vouches for it in its own state
    store.releases.put(ReleaseRow(release_id(manifest, signature, share["uri"]), "9.9.11",
                                  manifest, signature, share["uri"], "", share["infohash"],
                                  "verified", None, str(folder), 0.0))
    store.close()
    f.start()
    # F's tor is new and A's tor may hold F's old descriptor, whose introduction points died
    # with it: A's node, failing to reach an onion it reached lately, has its tor forget
    # that state (tor/reach.py). Checks run until F's offer is seen (the product's path)
    began, checks = time.monotonic(), 0
    while True:
        checks += 1
        proc = a.run("update", "check", timeout=400)
        if proc.returncode != 0 or time.monotonic() - began > 300:
            break
        time.sleep(1)
    print(f"A saw restarted F's offer after {time.monotonic() - began:.0f} s, check {checks}")
    assert proc.returncode == 5, proc.stdout + proc.stderr + a.log()
    assert f"{wheel.name} does not match the signed manifest" in proc.stderr
    assert not (a.home / "releases" / "obt-9.9.11").exists()
    assert share["infohash"] not in {r["id"] for r in a.json("list")}
    states = {r["version"]: r["state"] for r in a.json("release", "list")}
    assert states["9.9.11"] == "refused"
    # and never seeded: A's onions are nowhere in F's swarm
    a_onions = {o.removesuffix(".onion") for r in a.json("list") for o in r["onions"]}
    assert not observe(a, share["uri"], share["infohash"]) & a_onions
    # a second check does not fetch it again
    again = a.run("update", "check", "--json")
    assert again.returncode == 5
    assert "refused before" in again.stderr
    nothing_ran(releases)
