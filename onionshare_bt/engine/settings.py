"""What keeps the libtorrent session on loopback: its settings and its IP filters.

:func:`settings` turns off everything that could reach past loopback (DHT, LSD, UPnP,
NAT-PMP, PEX, uTP, encryption) and takes the fingerprint out of the peer id and handshake;
:func:`proxy_settings` points libtorrent's own proxy at Tor's SOCKS port; the filters admit
loopback only, or only the bridges' address ranges. Pure values: nothing here opens a
session (:class:`onionshare_bt.engine.session.Engine` applies them).
"""

from __future__ import annotations

import ipaddress
import secrets

import libtorrent as lt

_ALERTS = (
    lt.alert.category_t.error_notification
    | lt.alert.category_t.status_notification
    | lt.alert.category_t.storage_notification
    # piece_finished_alert: wakes readers of a download in progress (onionshare_bt.stream)
    | lt.alert.category_t.piece_progress_notification
)


#: the bridges' address ranges (:mod:`onionshare_bt.multiplex.core` has the same): the
#: outbound endpoints libtorrent dials, and the sources inbound connections arrive from
BRIDGE_OUTBOUND_NET = "127.64.0.0/10"
#: the start of every peer id libtorrent makes (names no client); the rest is random
PEER_FINGERPRINT = "-XX0000-"
#: libtorrent's peer-id characters after the fingerprint (its ``url_random``)
_PEER_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_.!~*()"
#: the reserved bytes of libtorrent's handshake (2.1, with these settings): the extension
#: protocol, the fast extension and the DHT bit, and for a torrent with v2 hashes the v2
#: upgrade bit
_RESERVED_V1 = bytes.fromhex("0000000000100005")
_RESERVED_V2 = bytes.fromhex("0000000000100015")
BRIDGE_INBOUND_NET = "127.1.0.0/16"


def settings(listen_host: str = "127.0.0.1", socks: tuple[str, int] | None = None) -> dict:
    """The session settings: everything that could reach past loopback is off.

    :param socks: Tor's SOCKS address; libtorrent's proxy for whatever is not a peer
        connection (trackers, of which obt adds none), hostnames resolved by Tor. None: no
        proxy (the integration tier)
    """
    return {
        "listen_interfaces": f"{listen_host}:0",
        "outgoing_interfaces": "",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "enable_outgoing_tcp": True,
        "enable_incoming_tcp": True,
        "dht_bootstrap_nodes": "",
        "out_enc_policy": int(lt.enc_policy.disabled),
        "in_enc_policy": int(lt.enc_policy.disabled),
        "seeding_outgoing_connections": False,
        "peer_fingerprint": PEER_FINGERPRINT,
        "handshake_client_version": "",
        "user_agent": "",
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": False,
        "alert_mask": int(_ALERTS),
        # requests in flight per peer: its rate times this many seconds. Above an onion
        # circuit's round trip (0.3-1 s, more under load: below it a queue shrinks with the
        # rate it limits), and no deeper: at 10 s every path held seconds of requests when
        # the last pieces were due, and the end game waited for the slowest (measured, K = 8:
        # the last 10 % of the bytes took 2.2 s on loopback at 10 s, 0.4 s at 3 s)
        "request_queue_time": 3,
        "max_out_request_queue": 1500,
        # the end game asks idle paths for blocks another path owes as soon as none is left
        # unrequested (with latency, K = 8: the last 10 % took 2.7 s strict, 1.4 s not)
        "strict_end_game_mode": False,
        "send_buffer_watermark": 1024 * 1024,
        "peer_connect_timeout": 60,
        # libtorrent dials a peer it is given (a bridge endpoint) at its next tick: 100 ms
        # instead of 500 takes up to 0.4 s off a download's first byte (measured: first
        # dial 0.5 s -> 0.1 s after connect_peer); quotas are handed out finer too
        "tick_interval": 100,
        "handshake_timeout": 60,
        # liveness: a peer that sends nothing for 20 s is gone (a Tor circuit that died
        # without a word, a frozen node). libtorrent sends a keep-alive after half this of
        # quiet, so a live peer never is; in 2.1 the same clock also bounds the wait for a
        # peer's handshake, which makes handshake_timeout moot
        "peer_timeout": 20,
        # a request unanswered this long is sent to another peer (the peer is snubbed);
        # above request_queue_time, the wait a full queue means on a busy circuit
        "request_timeout": 30,
        # peers neither side is interested in are dropped after this once slots run short
        "inactivity_timeout": 120,
        "auto_manage_startup": 5,
        "active_downloads": -1,
        "active_seeds": -1,
        "active_limit": -1,
        "min_reconnect_time": 5,
        # 2.1: leaves ``v`` out of the extension handshake (and would hide the user agent
        # from trackers); it neither closes listen sockets nor forces the proxy
        "anonymous_mode": True,
        "support_share_mode": False,
        **proxy_settings(socks),
    }


def handshake(info_hash: bytes, has_v2: bool) -> bytes:
    """The BitTorrent handshake libtorrent sends for a torrent, with a peer id of its
    making (a new one each call): what a bridge may send for it before libtorrent dials.

    :param info_hash: the 20-byte info-hash the torrent is known by (its v1 one for a
      hybrid torrent)
    :param has_v2: the torrent has v2 hashes (hybrid or v2-only)
    """
    peer_id = PEER_FINGERPRINT + "".join(secrets.choice(_PEER_ID_CHARS) for _ in range(12))
    return (b"\x13BitTorrent protocol" + (_RESERVED_V2 if has_v2 else _RESERVED_V1)
            + info_hash + peer_id.encode())


def torrent_handshake(meta) -> bytes:
    """:func:`handshake` for a torrent's :class:`~onionshare_bt.engine.metainfo.Metainfo`."""
    return handshake(bytes.fromhex(meta.id), has_v2=len(meta.info_hashes) > 1)


def proxy_settings(socks: tuple[str, int] | None) -> dict:
    """libtorrent's proxy: Tor's SOCKS port for trackers, never for peers (see
    :mod:`onionshare_bt.engine.session`).

    With ``proxy_peer_connections`` off, libtorrent 2.1 connects peers and web seeds
    directly (``instantiate_connection``, ``torrent::connect_to_url_seed``); peers go to
    bridge endpoints only, and no web seed ever reaches libtorrent
    (:func:`~onionshare_bt.engine.bare.bare_torrent`).
    """
    if socks is None:
        return {"proxy_type": int(lt.proxy_type_t.none)}
    host, port = socks
    return {
        "proxy_type": int(lt.proxy_type_t.socks5),
        "proxy_hostname": host,
        "proxy_port": int(port),
        "proxy_hostnames": True,
        "proxy_tracker_connections": True,
        "proxy_peer_connections": False,
    }


def loopback_filter() -> lt.ip_filter:
    """An IP filter that blocks every address except 127.0.0.0/8."""
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1)
    flt.add_rule("127.0.0.0", "127.255.255.255", 0)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    return flt


def bridge_filter() -> lt.ip_filter:
    """An IP filter that admits the bridges' ranges only.

    libtorrent may then dial only outbound endpoints (127.64.0.0/10) and accept only the
    inbound bridge's sources (127.1.0.0/16): no peer message (``ut_holepunch`` ``connect``,
    an extension handshake's ``p``) can make it dial 127.0.0.1, where tor's and the
    tracker's ports are, or anything else.
    """
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1)
    for net in (BRIDGE_OUTBOUND_NET, BRIDGE_INBOUND_NET):
        block = ipaddress.IPv4Network(net)
        flt.add_rule(str(block.network_address), str(block.broadcast_address), 0)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1)
    return flt


def global_class_filter() -> lt.ip_filter:
    """A peer class filter that puts every address, loopback included, in the global class."""
    flt = lt.ip_filter()
    flt.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    flt.add_rule("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 1 << lt.session.global_peer_class_id)
    return flt

