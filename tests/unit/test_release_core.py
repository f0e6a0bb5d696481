"""Signed obt releases: manifest, signature, release folder and choosing an offer (no network)."""

import json
import os
import stat
from pathlib import Path

import pytest

from onionshare_bt.errors import ExitCode, Refused, ReleaseRefused, UsageError, from_dict
from onionshare_bt.release import core, keys
from onionshare_bt.release.core import (
    MANIFEST,
    MAX_MANIFEST,
    SIGNATURE,
    FileEntry,
    choose,
    encode_manifest,
    is_newer,
    make_release,
    parse_manifest,
    read_folder,
    sign,
    verify_folder,
    verify_signature,
)

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
KEY = core.public_key(SEED)
OTHER_KEY = core.public_key(OTHER_SEED)
HASH = "ab" * 32


@pytest.fixture
def dist(tmp_path: Path) -> list[Path]:
    """A fake sdist and wheel (their content is never run)."""
    src = tmp_path / "dist"
    src.mkdir()
    sdist = src / "obt-1.2.3.tar.gz"
    sdist.write_bytes(b"sdist bytes " * 1000)
    wheel = src / "obt-1.2.3-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes " * 500)
    return [sdist, wheel]


@pytest.fixture
def release(tmp_path: Path, dist: list[Path]) -> Path:
    return make_release(dist, "1.2.3", SEED, tmp_path / "out")


def manifest_bytes(**overrides) -> bytes:
    document = {"product": "obt", "version": "1.2.3",
                "files": [{"name": "a.whl", "size": 3, "sha256": HASH}]}
    document.update(overrides)
    return json.dumps(document).encode()


def entry(**overrides) -> bytes:
    item = {"name": "a.whl", "size": 3, "sha256": HASH}
    item.update(overrides)
    return manifest_bytes(files=[item])


def offer(version: str, manifest_version: str | None = None, seed: bytes = SEED,
          source: str = "peer") -> dict:
    raw = encode_manifest(manifest_version or version, [FileEntry("a.whl", 3, HASH)])
    return {"source": source, "version": version, "manifest": raw,
            "signature": sign(raw, seed)}


# ---------------------------------------------------------------------------- round trip


def test_make_release_round_trips_through_read_folder(release: Path, dist: list[Path]):
    assert release.name == "obt-1.2.3"
    assert sorted(p.name for p in release.iterdir()) == sorted(
        [dist[0].name, dist[1].name, MANIFEST, SIGNATURE])
    manifest = read_folder(release, [OTHER_KEY, KEY])
    assert manifest.version == "1.2.3" and manifest.folder == "obt-1.2.3"
    assert manifest.raw == (release / MANIFEST).read_bytes()
    assert [f.name for f in manifest.files] == sorted(p.name for p in dist)
    by_name = {f.name: f for f in manifest.files}
    for path in dist:
        assert by_name[path.name].size == path.stat().st_size
        assert by_name[path.name].sha256 == core.sha256_file(path)
        assert (release / path.name).read_bytes() == path.read_bytes()
    signature = (release / SIGNATURE).read_bytes()
    assert len(signature) == 64
    assert verify_signature(manifest.raw, signature, [OTHER_KEY, KEY]) == KEY
    assert parse_manifest(manifest.raw) == manifest
    assert manifest.raw == encode_manifest("1.2.3", list(manifest.files))
    assert verify_folder(release, manifest, signature) == list(manifest.files)


def test_encode_manifest_is_canonical():
    raw = encode_manifest("1.0", [FileEntry("b", 1, HASH), FileEntry("a", 2, HASH)])
    assert raw == (b'{"files":[{"name":"a","sha256":"' + HASH.encode() + b'","size":2},'
                   b'{"name":"b","sha256":"' + HASH.encode() + b'","size":1}],'
                   b'"product":"obt","version":"1.0"}')


def test_make_release_refuses_existing_folder_bad_version_and_bad_files(
        tmp_path: Path, dist: list[Path], release: Path):
    with pytest.raises(UsageError, match="already exists"):
        make_release(dist, "1.2.3", SEED, tmp_path / "out")
    for version in ("nope", "v1.0", "1.0\n", "1.0-RC1", "1" * 65, ""):
        with pytest.raises(UsageError):
            make_release(dist, version, SEED, tmp_path / "other")
    with pytest.raises(UsageError, match="does not exist"):
        make_release([tmp_path / "missing.whl"], "2.0", SEED, tmp_path / "other")
    with pytest.raises(UsageError, match="not a regular file"):
        make_release([tmp_path / "dist"], "2.0", SEED, tmp_path / "other")
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / dist[1].name).write_bytes(b"x")
    with pytest.raises(UsageError, match="two release files"):
        make_release([dist[1], twin / dist[1].name], "2.0", SEED, tmp_path / "other")
    hidden = tmp_path / ".hidden"
    hidden.write_bytes(b"x")
    reserved = twin / MANIFEST
    reserved.write_bytes(b"{}")
    for bad in (hidden, reserved):
        with pytest.raises(UsageError, match="release file name"):
            make_release([bad], "2.0", SEED, tmp_path / "other")
    with pytest.raises(UsageError):
        make_release(dist, "2.0", b"short", tmp_path / "other")
    assert not (tmp_path / "other" / "obt-2.0").exists()


# ---------------------------------------------------------------------------- folder checks


def test_tampered_file_with_same_size_is_refused_naming_it(release: Path, dist: list[Path]):
    wheel = release / dist[1].name
    data = bytearray(wheel.read_bytes())
    data[100] ^= 1
    wheel.write_bytes(bytes(data))
    with pytest.raises(ReleaseRefused) as caught:
        read_folder(release, [KEY])
    assert caught.value.message == (
        f"{dist[1].name} does not match the signed manifest (sha256)")
    assert caught.value.exit_code == ExitCode.REFUSED


def test_grown_file_is_refused_naming_it(release: Path, dist: list[Path]):
    with open(release / dist[0].name, "ab") as handle:
        handle.write(b"!")
    with pytest.raises(ReleaseRefused, match=rf"^{dist[0].name} does not match .*\(size\)"):
        read_folder(release, [KEY])


def test_extra_file_is_refused(release: Path):
    (release / "evil.sh").write_bytes(b"rm -rf /")
    with pytest.raises(ReleaseRefused, match="'evil.sh' in the release folder is not in"):
        read_folder(release, [KEY])


def test_subfolder_is_refused(release: Path):
    (release / "sub").mkdir()
    with pytest.raises(ReleaseRefused, match="'sub' in the release folder is not a regular"):
        read_folder(release, [KEY])


def test_missing_file_is_refused(release: Path, dist: list[Path]):
    (release / dist[0].name).unlink()
    with pytest.raises(ReleaseRefused, match=f"{dist[0].name} is missing"):
        read_folder(release, [KEY])


def test_missing_manifest_or_signature_is_refused(release: Path):
    (release / SIGNATURE).unlink()
    with pytest.raises(ReleaseRefused, match="no readable signature"):
        read_folder(release, [KEY])


def test_symlinked_release_file_is_refused(release: Path, dist: list[Path]):
    target = release / dist[1].name
    copy = release.parent / "outside.whl"
    copy.write_bytes(target.read_bytes())
    target.unlink()
    target.symlink_to(copy)  # same bytes, but a symlink
    with pytest.raises(ReleaseRefused, match="is a symlink"):
        read_folder(release, [KEY])


def test_symlinked_manifest_is_refused(release: Path):
    manifest = release / MANIFEST
    copy = release.parent / "manifest-copy.json"
    copy.write_bytes(manifest.read_bytes())
    manifest.unlink()
    manifest.symlink_to(copy)
    with pytest.raises(ReleaseRefused):
        read_folder(release, [KEY])


def test_folder_named_for_another_version_is_refused(release: Path):
    renamed = release.rename(release.parent / "obt-9.9.9")
    with pytest.raises(ReleaseRefused, match="name does not match the signed version"):
        read_folder(renamed, [KEY])


def test_verify_folder_checks_manifest_and_signature_bytes(release: Path):
    manifest = parse_manifest((release / MANIFEST).read_bytes())
    signature = (release / SIGNATURE).read_bytes()
    other = parse_manifest(manifest.raw + b" ")
    with pytest.raises(ReleaseRefused, match=f"{MANIFEST} does not match"):
        verify_folder(release, other, signature)
    with pytest.raises(ReleaseRefused, match=f"{SIGNATURE} does not match"):
        verify_folder(release, manifest, bytes(64))


# ---------------------------------------------------------------------------- signatures


def test_wrong_key_is_refused(release: Path):
    with pytest.raises(ReleaseRefused) as caught:
        read_folder(release, [OTHER_KEY])
    assert caught.value.message == (
        "the release's signature does not verify with any trusted maintainer key")
    with pytest.raises(ReleaseRefused):
        read_folder(release, [])


def test_manifest_resigned_by_other_key_is_refused(release: Path):
    raw = (release / MANIFEST).read_bytes()
    (release / SIGNATURE).write_bytes(sign(raw, OTHER_SEED))
    with pytest.raises(ReleaseRefused, match="does not verify"):
        read_folder(release, [KEY])


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 64, b"garbage" * 20])
def test_truncated_or_garbage_signature_is_refused(release: Path, signature: bytes):
    good = (release / SIGNATURE).read_bytes()
    (release / SIGNATURE).write_bytes(signature)
    with pytest.raises(ReleaseRefused):
        read_folder(release, [KEY])
    with pytest.raises(ReleaseRefused, match="does not verify"):
        verify_signature((release / MANIFEST).read_bytes(), signature, [KEY])
    with pytest.raises(ReleaseRefused, match="does not verify"):
        verify_signature((release / MANIFEST).read_bytes(), good[:63], [KEY])


def test_tampered_manifest_fails_the_signature():
    raw = encode_manifest("1.0", [FileEntry("a.whl", 3, HASH)])
    signature = sign(raw, SEED)
    assert verify_signature(raw, signature, [KEY]) == KEY
    with pytest.raises(ReleaseRefused):
        verify_signature(raw.replace(b"1.0", b"9.0"), signature, [KEY])
    with pytest.raises(ReleaseRefused):  # malformed keys are skipped, not crashed on
        verify_signature(raw, signature, [b"short", b"\xff" * 32])
    assert verify_signature(raw, signature, [b"short", KEY]) == KEY


def test_release_refused_is_a_registered_refusal():
    error = ReleaseRefused("nope")
    assert isinstance(error, Refused) and error.kind == "release_refused"
    again = from_dict(error.to_dict())
    assert type(again) is ReleaseRefused and again.message == "nope"


# ---------------------------------------------------------------------------- manifest parsing


def test_parse_manifest_accepts_a_valid_one():
    manifest = parse_manifest(manifest_bytes())
    assert manifest.version == "1.2.3"
    assert manifest.files == (FileEntry("a.whl", 3, HASH),)


@pytest.mark.parametrize("name", [
    "../evil", "..", ".", "a/b", "/etc/passwd", "a\\b", "..\\x", ".hidden", "a\x00b",
    "", "x" * 129, "caf\u00e9", "tab\tname", "new\nline", MANIFEST, SIGNATURE,
    "MANIFEST.JSON", 7, None,
])
def test_unsafe_names_are_refused(name):
    with pytest.raises(ReleaseRefused, match="release file name"):
        parse_manifest(entry(name=name))


def test_duplicate_names_are_refused():
    files = [{"name": "a.whl", "size": 1, "sha256": HASH},
             {"name": "a.whl", "size": 2, "sha256": HASH}]
    with pytest.raises(ReleaseRefused, match="twice"):
        parse_manifest(manifest_bytes(files=files))
    files[1]["name"] = "A.WHL"  # would collide on a case-insensitive file system
    with pytest.raises(ReleaseRefused, match="twice"):
        parse_manifest(manifest_bytes(files=files))


@pytest.mark.parametrize("version", [
    "nope", "1.0.0-rc1", "v1.0", " 1.0", "1.0\n", "1" * 65, "", 1, None, ["1.0"],
])
def test_bad_versions_are_refused(version):
    with pytest.raises(ReleaseRefused, match="release version"):
        parse_manifest(manifest_bytes(version=version))


@pytest.mark.parametrize("digest", [
    "AB" * 32, "ab" * 31, "ab" * 33, "zz" * 32, "", 12, None, "ab" * 31 + "a\n",
])
def test_bad_hex_is_refused(digest):
    with pytest.raises(ReleaseRefused, match="sha256"):
        parse_manifest(entry(sha256=digest))


@pytest.mark.parametrize("size", [True, False, -1, 1.0, "3", None, core.MAX_FILE_SIZE + 1])
def test_bad_sizes_are_refused(size):
    with pytest.raises(ReleaseRefused, match="size"):
        parse_manifest(entry(size=size))


def test_oversized_manifest_is_refused():
    raw = manifest_bytes()
    padded = raw[:-1] + b" " * (MAX_MANIFEST - len(raw) + 1) + b"}"
    assert len(padded) == MAX_MANIFEST + 1
    with pytest.raises(ReleaseRefused, match="too large"):
        parse_manifest(padded)
    assert parse_manifest(padded[:-2] + b"}").version == "1.2.3"  # exactly at the limit


@pytest.mark.parametrize("raw", [
    b"[]", b'"obt"', b"1", b"null", b"[" * 5000 + b"]" * 5000,
])
def test_non_object_json_is_refused(raw):
    with pytest.raises(ReleaseRefused, match="not a JSON object|not valid JSON"):
        parse_manifest(raw)


@pytest.mark.parametrize("raw, message", [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b'{"product": NaN}', "not valid JSON"),
    (b'{"product":"obt","product":"obt","version":"1.0","files":[]}', "duplicate key"),
    (manifest_bytes(product="other"), "not for obt"),
    (manifest_bytes(extra=1), "unknown fields"),
    (b'{"product":"obt","version":"1.0"}', "unknown fields"),
    (manifest_bytes(files=[]), "no files"),
    (manifest_bytes(files={"a": 1}), "no files"),
    (manifest_bytes(files=[{"name": f"f{i}", "size": 1, "sha256": HASH} for i in range(17)]),
     "too many"),
    (manifest_bytes(files=["a.whl"]), "missing or unknown"),
    (manifest_bytes(files=[{"name": "a", "size": 1, "sha256": HASH, "run": "x"}]),
     "missing or unknown"),
])
def test_other_malformed_manifests_are_refused(raw, message):
    with pytest.raises(ReleaseRefused, match=message):
        parse_manifest(raw)


def test_refusal_messages_do_not_echo_input():
    hostile = "A" * 5000
    for raw in (manifest_bytes(version=hostile), entry(name=hostile), entry(sha256=hostile)):
        with pytest.raises(ReleaseRefused) as caught:
            parse_manifest(raw)
        assert len(caught.value.message) < 100 and "AAAA" not in caught.value.message


# ---------------------------------------------------------------------------- keys


def test_key_file_is_0600_round_trips_and_refuses_overwrite(tmp_path: Path):
    path = tmp_path / "release.key"
    seed = core.generate_seed()
    assert len(seed) == 32 and seed != core.generate_seed()
    core.write_key(path, seed)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text() == seed.hex() + "\n"
    assert core.read_key(path) == seed
    with pytest.raises(UsageError, match="already exists"):
        core.write_key(path, core.generate_seed())
    assert core.read_key(path) == seed  # untouched


def test_read_key_refuses_missing_and_malformed_files(tmp_path: Path):
    with pytest.raises(UsageError, match="does not exist"):
        core.read_key(tmp_path / "missing")
    for content in (b"", b"zz" * 32, b"ab" * 31, b"\xff" * 64):
        bad = tmp_path / "bad"
        bad.write_bytes(content)
        with pytest.raises(UsageError, match="does not hold a key"):
            core.read_key(bad)


def test_parse_public_key():
    assert core.parse_public_key(KEY.hex()) == KEY
    assert core.parse_public_key(f"  {KEY.hex().upper()}\n") == KEY
    for bad in ("", KEY.hex()[:-1], KEY.hex() + "00", "g" * 64, "ab " * 21 + "a"):
        with pytest.raises(UsageError):
            core.parse_public_key(bad)


def test_public_key_and_signature_sizes():
    assert len(KEY) == 32 and KEY != OTHER_KEY
    assert len(sign(b"x", SEED)) == 64


def test_default_maintainer_keys_are_public_keys_only():
    assert keys.MAINTAINER_KEYS
    for text in keys.MAINTAINER_KEYS:
        assert len(core.parse_public_key(text)) == 32


# ---------------------------------------------------------------------------- choosing


@pytest.mark.parametrize("candidate, current, newer", [
    ("1.0.1", "1.0", True),
    ("1.0", "1.0.0", False),
    ("0.9", "1.0", False),
    ("1.1rc1", "1.0", True),
    ("1.0rc1", "1.0", False),
    ("1.0", "1.0rc1", True),
    ("1.0rc2", "1.0rc1", True),
    ("1.0a1", "1.0b1", False),
    ("1.0.dev1", "0.9", True),
    ("1.0.post1", "1.0", True),
    ("1!0.1", "9.9", True),
    ("nope", "1.0", False),
    ("1.0", "nope", False),
])
def test_is_newer(candidate, current, newer):
    assert is_newer(candidate, current) is newer


def test_choose_picks_the_newest_valid_offer():
    offers = [offer("1.1", source="a"), offer("1.3", source="b"), offer("1.2", source="c"),
              offer("1.3", source="d")]
    best, refused = choose(offers, "1.0", [KEY])
    assert best is offers[1] and refused == []


def test_choose_ignores_offers_that_are_not_newer():
    offers = [offer("1.0", source="same"), offer("0.9", source="old"),
              offer("0.9", seed=OTHER_SEED, source="old-bad")]
    assert choose(offers, "1.0", [KEY]) == (None, [])


def test_choose_reports_bad_signatures_and_version_mismatch():
    forged = offer("9.0", seed=OTHER_SEED, source="forger")
    swapped = offer("5.0", manifest_version="1.1", source="replayer")
    truncated = dict(offer("8.0", source="cutter"))
    truncated["signature"] = truncated["signature"][:10]
    garbage = {"source": "junk", "version": "7.0", "manifest": b"[]", "signature": "x"}
    good = offer("1.5", source="honest")
    best, refused = choose([forged, swapped, truncated, garbage, good], "1.0", [KEY])
    assert best is good
    assert [(r["source"], r["version"]) for r in refused] == [
        ("forger", "9.0"), ("replayer", "5.0"), ("cutter", "8.0"), ("junk", "7.0")]
    assert "does not verify" in refused[0]["reason"]
    assert "different version" in refused[1]["reason"]
    assert all("does not verify" in r["reason"] for r in refused[2:])


def test_choose_refuses_signed_but_malformed_manifest_and_bad_offer_versions():
    raw = b'{"product":"obt","version":"2.0","files":[]}'
    signed_junk = {"source": "x", "version": "2.0", "manifest": raw,
                   "signature": sign(raw, SEED)}
    bad_version = {"source": "y", "version": "A" * 500, "manifest": b"", "signature": b""}
    best, refused = choose([signed_junk, bad_version], "1.0", [KEY])
    assert best is None
    assert refused[0] == {"source": "x", "version": "2.0",
                          "reason": "the release manifest lists no files"}
    assert refused[1]["source"] == "y" and len(refused[1]["version"]) == 64
    assert "release version" in refused[1]["reason"]


def test_choose_with_no_trusted_keys_accepts_nothing():
    best, refused = choose([offer("2.0")], "1.0", [])
    assert best is None and len(refused) == 1
