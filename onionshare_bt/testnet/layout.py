"""The private test network's layout and torrc texts (pure: no I/O, no clock).

Every option here is one of the measured rapid-bootstrap settings in
``shared/TESTNET.md``: voting at tor's floor (10 s intervals, 2 s delays) with the first
vote a few seconds after launch, equal relay weights from a bandwidth file, every relay
a Stable guard and HSDir, and no exits (onion services need none).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from onionshare_bt.tor.network import Network
from onionshare_bt.tor.torrc import render, torrc_path

__all__ = [
    "AUTHORITIES", "FIRST_VOTE_AFTER", "LONG_VOTING_INTERVAL", "VOTE_DELAY", "VOTING_INTERVAL",
    "Node", "Options",
    "authority_torrc", "bandwidth_file", "describe", "dir_authority_line", "network_for", "plan",
    "port_count", "relay_torrc", "voting_offset", "with_delay",
]

Options = list[tuple[str, str]]

AUTHORITIES = 3
#: seconds between consensuses. Onion-service time periods last 24 of them on a testing
#: network (on Tor's, a day): at each turn every service uploads its next descriptor at once.
#: At 10 s (tor's floor) a node with 200 services met a turn every 4 minutes, and a turn's
#: burst left its tor unresponsive for 30 s and its uploads unanswered for minutes
#: (bench/results/restart-republication.md); 20 s makes a period 8 minutes. The demo, the
#: benchmarks and ``obt testnet up`` use it: the network is usable in ~10-20 s
VOTING_INTERVAL = 20
#: for a network whose nodes live longer than a period: 16-minute periods. A descriptor a
#: turn's burst failed to upload is the one clients ask for after the *next* turn: at 8
#: minutes a restarted node with 200 services met two turns before test_load had sampled its
#: URIs (SOCKS 0xF0 for 300 s, in CI and in full runs). 16 minutes is longer than a
#: restart's republication and sampling may take (at most 15); the lost burst itself stays an
#: open defect. The cost: relays that miss the first vote wait 40 s for the next, so the
#: network was usable in 18 s once and not within 60 s another time (measured)
LONG_VOTING_INTERVAL = 40
VOTE_DELAY = 2
DIST_DELAY = 2
#: seconds between launch and the authorities' first vote
FIRST_VOTE_AFTER = 3
#: equal weight for every relay in the authorities' bandwidth file
_RELAY_WEIGHT = 1000


@dataclass(frozen=True)
class Node:
    """One tor process of the test network.

    :param role: ``"authority"`` or ``"relay"``
    :param nickname: its tor nickname (unique in the network)
    :param data_dir: its DataDirectory (holds torrc, keys and tor.log)
    :param or_port: its ORPort on 127.0.0.1
    :param control_port: its ControlPort (cookie auth), used while bringing it up
    :param dir_port: its DirPort (authorities only)
    :param proxy_port: with added latency, the delaying proxy's port that it advertises
      instead of its ORPort (:mod:`~onionshare_bt.testnet.delay`)
    """

    role: str
    nickname: str
    data_dir: Path
    or_port: int
    control_port: int
    dir_port: int | None = None
    proxy_port: int | None = None

    @property
    def is_authority(self) -> bool:
        """True for a directory authority."""
        return self.role == "authority"

    @property
    def ports(self) -> tuple[int, ...]:
        """Every port it (or its delaying proxy) listens on."""
        return tuple(p for p in (self.or_port, self.dir_port, self.control_port,
                                 self.proxy_port) if p)

    @property
    def advertised_or_port(self) -> int:
        """The ORPort other tors connect to: the proxy's when there is one."""
        return self.proxy_port or self.or_port


def port_count(relays: int) -> int:
    """How many consecutive ports a network with **relays** relays uses."""
    return 3 * AUTHORITIES + 2 * relays


def plan(root: Path, base_port: int, relays: int) -> list[Node]:
    """Lay out the network: authority i on ``base_port + 3i`` (OR, Dir, Control), then
    relay i on ``base_port + 9 + 2i`` (OR, Control).

    :param root: the testnet's root directory
    :param base_port: first port used
    :param relays: how many non-exit relays besides the authorities
    :returns: the authorities, then the relays
    """
    nodes = []
    for i in range(AUTHORITIES):
        port = base_port + 3 * i
        nodes.append(Node("authority", f"auth{i}", root / "nodes" / f"auth{i}", port,
                          control_port=port + 2, dir_port=port + 1))
    first = base_port + 3 * AUTHORITIES
    for i in range(relays):
        port = first + 2 * i
        nodes.append(Node("relay", f"relay{i}", root / "nodes" / f"relay{i}", port,
                          control_port=port + 1))
    return nodes


def with_delay(nodes: list[Node], base_port: int, relays: int) -> list[Node]:
    """Give every node a delaying proxy port, after the ports :func:`plan` uses.

    :param nodes: the nodes from :func:`plan`
    :param base_port: the network's first port
    :param relays: its relay count
    :returns: the same nodes with ``proxy_port`` set (``len(nodes)`` more ports)
    """
    first = base_port + port_count(relays)
    return [replace(node, proxy_port=first + i) for i, node in enumerate(nodes)]


def voting_offset(now: float, interval: int = VOTING_INTERVAL) -> int:
    """``TestingV3AuthVotingStartOffset`` that puts the first vote ~3 s after **now**.

    Tor starts voting intervals at multiples of the interval (since midnight UTC) plus
    this offset, and votes ``VOTE_DELAY + DIST_DELAY`` before an interval starts.

    :param now: the launch time (seconds since the epoch)
    :param interval: seconds between consensuses
    :returns: an offset in ``[0, interval)``
    """
    first_interval = int(now) + FIRST_VOTE_AFTER + VOTE_DELAY + DIST_DELAY
    return first_interval % interval


def dir_authority_line(node: Node, v3ident: str, fingerprint: str) -> str:
    """The ``DirAuthority`` value naming one authority.

    :param node: the authority
    :param v3ident: fingerprint of its v3 authority identity key (from its certificate)
    :param fingerprint: its relay identity fingerprint (``tor --list-fingerprint``)
    :returns: e.g. ``auth0 orport=17000 no-v2 v3ident=... 127.0.0.1:17001 ABCD...``
    """
    return (f"{node.nickname} orport={node.advertised_or_port} no-v2 v3ident={v3ident} "
            f"127.0.0.1:{node.dir_port} {fingerprint}")


def bandwidth_file(fingerprints: Iterable[str], timestamp: int) -> str:
    """A ``V3BandwidthsFile`` giving every relay the same weight.

    :param fingerprints: relay identity fingerprints (hex)
    :param timestamp: when it was "measured" (now)
    :returns: the file's text
    """
    lines = [str(timestamp)]
    lines += [f"node_id=${fp} bw={_RELAY_WEIGHT}" for fp in fingerprints]
    return "\n".join(lines) + "\n"


def _joining(authorities: list[str]) -> Options:
    """What every member needs to find this network."""
    return [("TestingTorNetwork", "1"), *(("DirAuthority", line) for line in authorities),
            ("PathsNeededToBuildCircuits", "0.67")]


def _or_ports(node: Node) -> Options:
    """The ORPort lines: one, or (behind a delaying proxy) advertise the proxy's port."""
    if node.proxy_port is None:
        return [("ORPort", f"127.0.0.1:{node.or_port}")]
    return [("ORPort", f"127.0.0.1:{node.proxy_port} NoListen"),
            ("ORPort", f"127.0.0.1:{node.or_port} NoAdvertise")]


def _router(node: Node, authorities: list[str], empty: Path) -> Options:
    """Options shared by authorities and relays."""
    return [
        *_joining(authorities),
        ("DataDirectory", torrc_path(node.data_dir)),
        ("Nickname", node.nickname),
        ("ContactInfo", "obt private test network"),
        ("Address", "127.0.0.1"),
        ("AddressDisableIPv6", "1"),
        *_or_ports(node),
        ("ControlPort", f"127.0.0.1:{node.control_port}"),
        ("CookieAuthentication", "1"),
        ("SocksPort", "0"),
        ("AssumeReachable", "1"),
        ("ExitRelay", "0"),
        ("ExitPolicy", "reject *:*"),
        ("GeoIPFile", torrc_path(empty)),
        ("GeoIPv6File", torrc_path(empty)),
        ("Log", f"notice file {torrc_path(node.data_dir / 'tor.log')}"),
        ("ShutdownWaitLength", "0"),
    ]


def authority_torrc(node: Node, authorities: list[str], *, offset: int, bandwidths: Path,
                    empty: Path, interval: int = VOTING_INTERVAL) -> str:
    """The torrc of a directory authority.

    :param node: the authority
    :param authorities: every ``DirAuthority`` value of the network
    :param offset: :func:`voting_offset` at launch
    :param bandwidths: the shared ``V3BandwidthsFile``
    :param empty: an empty file (for the GeoIP databases)
    :param interval: seconds between consensuses
    :returns: torrc text
    """
    vote, dist = str(VOTE_DELAY), str(DIST_DELAY)
    return render([
        *_router(node, authorities, empty),
        ("DirPort", f"127.0.0.1:{node.dir_port}"),
        ("AuthoritativeDirectory", "1"),
        ("V3AuthoritativeDirectory", "1"),
        ("TestingV3AuthInitialVotingInterval", str(interval)),
        ("TestingV3AuthInitialVoteDelay", vote),
        ("TestingV3AuthInitialDistDelay", dist),
        ("V3AuthVotingInterval", str(interval)),
        ("V3AuthVoteDelay", vote),
        ("V3AuthDistDelay", dist),
        ("V3AuthNIntervalsValid", "2"),
        ("TestingV3AuthVotingStartOffset", str(offset)),
        ("TestingDirAuthVoteGuard", "*"),
        ("TestingDirAuthVoteHSDir", "*"),
        ("V3BandwidthsFile", torrc_path(bandwidths)),
        ("AuthDirVoteStableGuaranteeMinUptime", "0"),
        ("AuthDirVoteStableGuaranteeMTBF", "0"),
        ("AuthDirMaxServersPerAddr", "0"),
    ])


def relay_torrc(node: Node, authorities: list[str], *, empty: Path) -> str:
    """The torrc of a non-exit relay.

    :param node: the relay
    :param authorities: every ``DirAuthority`` value of the network
    :param empty: an empty file (for the GeoIP databases)
    :returns: torrc text
    """
    return render(_router(node, authorities, empty))


def network_for(name: str, authorities: list[str]) -> Network:
    """The network file's contents: how clients and extra relays join.

    :param name: the network's name
    :param authorities: every ``DirAuthority`` value
    :returns: the :class:`Network`
    """
    # on one loaded machine a circuit's build time says nothing about the network: tor's
    # learnt timeout (milliseconds on loopback) would abandon circuits that are merely slow
    client = [*_joining(authorities), ("LearnCircuitBuildTimeout", "0"),
              ("CircuitBuildTimeout", "60")]
    relay = [*_joining(authorities), ("AssumeReachable", "1"), ("Address", "127.0.0.1"),
             ("AddressDisableIPv6", "1")]
    return Network(name=name, client_options=tuple(client), relay_options=tuple(relay))


def describe(nodes: Iterable[Node], pids: Mapping[str, int]) -> list[dict]:
    """The process list recorded in ``state.json``.

    :param nodes: the network's nodes
    :param pids: nickname -> pid
    :returns: one dict per node: role, nickname, pid, or_port, dir_port, control_port,
      data_dir
    """
    return [{"role": n.role, "nickname": n.nickname, "pid": pids[n.nickname],
             "or_port": n.or_port, "dir_port": n.dir_port, "control_port": n.control_port,
             "data_dir": str(n.data_dir)} for n in nodes]
