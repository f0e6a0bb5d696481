"""obt URIs."""

import pytest

from onionshare_bt.errors import BadURI
from onionshare_bt.onion import onion_from_pubkey
from onionshare_bt.uri import new_token, parse_uri

ONION = onion_from_pubkey(b"\x07" * 32)


def test_round_trip():
    token = new_token()
    uri = parse_uri(f"http://{ONION}.onion/private/{token}")
    assert (uri.onion, uri.kind, uri.token) == (ONION, "private", token)
    assert str(uri) == f"http://{ONION}.onion/private/{token}"
    assert len(token) >= 22  # >= 128 bits


@pytest.mark.parametrize("text, reason", [
    ("ftp://x.onion/private/abc", "not an obt URI"),
    (f"https://{ONION}.onion/private/{'a' * 32}", "not an obt URI"),
    ("http://example.com/private/" + "a" * 32, "onion"),
    (f"http://{ONION[:16]}.onion/private/{'a' * 32}", "v2"),
    (f"http://{ONION}.onion/secret/{'a' * 32}", "path"),
    (f"http://{ONION}.onion/private/short", "token"),
    (f"http://{ONION}.onion/private/{'a' * 32}?x=1", "query"),
    (f"http://{ONION}.onion:8080/private/{'a' * 32}", "port"),
    ("not a uri at all", "not an obt URI"),
])
def test_bad_uris_say_why(text, reason):
    with pytest.raises(BadURI, match=reason):
        parse_uri(text)
