"""``obt release`` (keygen, make, publish, list) and ``obt update check``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ReleaseRefused
from ..ops import requests as rq
from . import client, follow
from . import render as r
from .base import command, json_option


@click.group()
def release():
    """Releases of obt: make and sign one (maintainers), seed one, list those held."""


@release.command(name="keygen")
@click.argument("key_file", type=click.Path(dir_okay=False))
@json_option
@command
def release_keygen(state, key_file, as_json):
    """Write a new ed25519 release signing key to KEY_FILE (0600); print its public half."""
    from ..release import core

    seed = core.generate_seed()
    core.write_key(Path(key_file), seed)
    public = core.public_key(seed).hex()
    r.emit({"key_file": str(Path(key_file).resolve()), "public_key": public}, as_json, public)


@release.command(name="make")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--version", "version", required=True, help="The release's version (PEP 440).")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False),
              help="The signing key file (from 'obt release keygen').")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Where to create the obt-<version> folder.")
@json_option
@command
def release_make(state, files, version, key_file, out_dir, as_json):
    """Build a signed release folder from FILES (the sdist and the wheel)."""
    from ..release import core

    folder = core.make_release([Path(f) for f in files], version,
                               core.read_key(Path(key_file)), Path(out_dir))
    manifest = core.parse_manifest((folder / core.MANIFEST).read_bytes())
    r.emit({"folder": str(folder), "version": manifest.version,
            "files": [{"name": e.name, "size": e.size, "sha256": e.sha256}
                      for e in manifest.files]}, as_json, str(folder))


@release.command(name="publish")
@click.argument("folder", type=click.Path(file_okay=False))
@json_option
@command
async def release_publish(state, folder, as_json):
    """Verify a release folder and seed it; the node offers it to those who trust it."""
    cfg = await client.node(state)
    info = await client.send(cfg, rq.ReleasePublish(folder=str(Path(folder).resolve())),
                             timeout=120)
    r.emit(info, as_json, f"seeding obt {info['version']}: {info['uri']}")


@release.command(name="list")
@json_option
@command
async def release_list(state, as_json):
    """Releases this node holds, is fetching, or refused (and why)."""
    cfg = await client.node(state)
    data = await client.send(cfg, rq.ReleaseList())
    r.emit(data, as_json, r.releases_text(data))


@click.group()
def update():
    """Newer obt releases from the trusted set: fetched, verified, seeded, never installed."""


@update.command(name="check")
@click.option("--timeout", type=click.FloatRange(1, 86400), default=None,
              help="Give up following the download after this many seconds.")
@json_option
@command
async def update_check(state, timeout, as_json):
    """Ask the trusted set for a newer signed release; fetch, verify and seed it."""
    cfg = await client.node(state)
    data = await client.send(cfg, rq.UpdateCheck(),
                             timeout=cfg.trust_timeout * 8 + cfg.fetch_timeout + 60)
    r.unreachable(data["unreachable"])
    r.refused_releases(data["refused"])
    found = data["release"]
    if found is None:
        if data["refused"]:
            raise ReleaseRefused("no newer release in the trusted set verifies; "
                                 "nothing was fetched or seeded")
        r.emit(data, as_json, f"obt {r.shown(data['current'], 40)} is the newest release in "
                              f"the trusted set ({data['offers']} offered)")
        return
    size = sum(f["size"] for f in found["files"])
    bar = r.Bar(f"obt {r.shown(found['version'], 36)}", size) if state.progress(as_json) \
        else None
    try:
        found = await follow.release(cfg, found["id"], timeout, bar.update if bar else None)
    finally:
        if bar:
            bar.close()
    data["release"] = found
    if found["state"] == "refused":
        raise ReleaseRefused(f"obt {r.shown(found['version'], 40)} was refused: "
                             f"{r.shown(found['reason'], 200)}; "
                             "its files were deleted and it is not seeded")
    r.emit(data, as_json, r.fetched_release_text(found))


COMMANDS = (release, update)
