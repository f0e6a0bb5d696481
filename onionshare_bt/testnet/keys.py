"""Identity keys for the test network, generated once and cached between runs.

Each node's ``keys/`` directory (and, for authorities, the ``tor-gencert`` v3 identity,
signing key and certificate) lives in ``<cache>/<nickname>/`` together with its
fingerprints, so a run only copies files: no RSA key generation, no ``tor
--list-fingerprint``. Networks share the cache safely: they never talk to each other.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from onionshare_bt.errors import TorError
from onionshare_bt.testnet.layout import Node
from onionshare_bt.tor.torrc import find_tool

__all__ = ["NodeKeys", "default_cache", "ensure_keys", "install_keys"]

_KEYGEN_TIMEOUT = 60.0
_CERT_MONTHS = "12"
#: regenerate an authority certificate that expires sooner than this
_CERT_MARGIN = dt.timedelta(days=7)
_DUMMY_AUTHORITY = "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff"


@dataclass(frozen=True)
class NodeKeys:
    """A node's cached keys.

    :param path: ``<cache>/<nickname>`` (holds ``keys/``)
    :param fingerprint: relay identity fingerprint, 40 hex digits
    :param v3ident: authority v3 identity fingerprint, or None for a relay
    """

    path: Path
    fingerprint: str
    v3ident: str | None


def default_cache() -> Path:
    """``<user cache dir>/obt/testnet-keys`` (``~/.cache/obt/testnet-keys`` on Linux).

    It deliberately ignores ``OBT_HOME``: tests with an isolated home still reuse keys.

    :returns: the key cache directory (not created)
    """
    return platformdirs.user_cache_path("obt") / "testnet-keys"


def _cert_field(cert: Path, field: str) -> str | None:
    for line in cert.read_text(encoding="ascii").splitlines():
        if line.startswith(field + " "):
            return line.split(" ", 1)[1].strip()
    return None


def _load(path: Path, authority: bool) -> NodeKeys | None:
    """Read a cache entry; None if absent, incomplete or expiring."""
    try:
        fingerprint = (path / "fingerprint").read_text(encoding="ascii").split()[1:]
        fingerprint = "".join(fingerprint).upper()
        if not authority:
            return NodeKeys(path, fingerprint, None) if len(fingerprint) == 40 else None
        cert = path / "keys" / "authority_certificate"
        v3ident, expires = _cert_field(cert, "fingerprint"), _cert_field(cert, "dir-key-expires")
    except (FileNotFoundError, IndexError):
        return None
    if not v3ident or not expires or len(fingerprint) != 40:
        return None
    when = dt.datetime.strptime(expires, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    if when < dt.datetime.now(dt.UTC) + _CERT_MARGIN:
        return None
    return NodeKeys(path, fingerprint, v3ident)


def _run(argv: list[str], **kwargs: object) -> None:
    try:
        result = subprocess.run(argv, capture_output=True, timeout=_KEYGEN_TIMEOUT,
                                check=False, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TorError(f"{Path(argv[0]).name} failed: {exc}") from exc
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise TorError(f"{Path(argv[0]).name} exited with {result.returncode}: "
                       + " / ".join(tail))


def _generate(node: Node, cache: Path, tor: str, gencert: str) -> NodeKeys:
    """Create one node's keys in a scratch dir, then move it into the cache."""
    scratch = Path(tempfile.mkdtemp(prefix=f".{node.nickname}-", dir=cache))
    try:
        keys = scratch / "keys"
        keys.mkdir(mode=0o700)
        if node.is_authority:
            _run([gencert, "--create-identity-key", "-m", _CERT_MONTHS, "--passphrase-fd", "0",
                  "-i", str(keys / "authority_identity_key"),
                  "-s", str(keys / "authority_signing_key"),
                  "-c", str(keys / "authority_certificate")], input=b"\n")
        empty = scratch / "empty"
        empty.write_bytes(b"")
        _run([tor, "--list-fingerprint", "--defaults-torrc", str(empty), "-f", str(empty),
              "--DataDirectory", str(scratch), "--ORPort", "1", "--Nickname", node.nickname,
              "--DirAuthority", _DUMMY_AUTHORITY, "--GeoIPFile", str(empty),
              "--GeoIPv6File", str(empty), "--SocksPort", "0", "--Log", "err stderr"])
        target = cache / node.nickname
        if target.exists():  # incomplete or expiring: replace it
            shutil.rmtree(target)
        try:
            scratch.rename(target)
        except OSError as exc:  # a concurrent run may have cached it first
            loaded = _load(target, node.is_authority)
            if loaded is None:
                raise TorError(f"could not cache test network keys in {target}: {exc}") from exc
            return loaded
        loaded = _load(target, node.is_authority)
        if loaded is None:
            raise TorError(f"tor wrote no usable keys for {node.nickname} in {target}")
        return loaded
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _find_gencert(tor: str) -> str:
    sibling = Path(tor).with_name("tor-gencert")
    return find_tool("tor-gencert", str(sibling) if sibling.is_file() else None)


def ensure_keys(nodes: list[Node], cache: Path, tor: str) -> dict[str, NodeKeys]:
    """Return every node's keys, generating (in parallel) only those not cached.

    :param nodes: the network's nodes
    :param cache: the key cache directory (created 0700)
    :param tor: the tor binary (``tor-gencert`` is looked up next to it, then on PATH)
    :returns: nickname -> keys
    :raises TorMissing: if an authority's keys must be made and tor-gencert is missing
    :raises TorError: if key generation fails
    """
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    found = {n.nickname: _load(cache / n.nickname, n.is_authority) for n in nodes}
    missing = [n for n in nodes if found[n.nickname] is None]
    if missing:
        gencert = _find_gencert(tor) if any(n.is_authority for n in missing) else ""
        with ThreadPoolExecutor(max_workers=4) as pool:
            made = pool.map(lambda n: _generate(n, cache, tor, gencert), missing)
            for node, keys in zip(missing, made, strict=True):
                found[node.nickname] = keys
    return {nick: keys for nick, keys in found.items() if keys is not None}


def install_keys(node: Node, keys: NodeKeys) -> None:
    """Copy a node's cached keys into its fresh DataDirectory (0700 dirs, 0600 files).

    The authority identity key stays in the cache: a running authority needs only its
    certificate and signing key.

    :param node: the node
    :param keys: its cached keys
    """
    node.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = node.data_dir / "keys"
    shutil.copytree(keys.path / "keys", target,
                    ignore=shutil.ignore_patterns("authority_identity_key"))
    target.chmod(0o700)
    for item in target.iterdir():
        item.chmod(0o600)
