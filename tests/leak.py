"""The leak check: counts and captures whatever tries to leave the test namespace.

``bash test.sh`` runs the suite inside a network namespace made by ``scripts/sinkhole.sh``:
loopback, plus a default route into a veth pair whose far end has no address. Anything sent
anywhere but loopback (a packet to an IP address, a DNS query to the resolver) goes out of
the near end and arrives, dead, at the far end. :class:`Sinkhole` reads both ends' packet
counters from ``/proc/net/dev`` (per namespace) and captures what arrives at the far end on
an ``AF_PACKET`` socket, so a failure says what leaked (``UDP 192.0.2.1:40211 -> 192.0.2.53:53
DNS tracker.example.com``), not only that something did.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import threading
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
MAX_KEPT = 64


def active() -> tuple[str, str] | None:
    """The sinkhole's (near, far) interface names when the suite runs inside it."""
    value = os.environ.get("OBT_SINKHOLE", "")
    if ":" not in value:
        return None
    near, far = value.split(":", 1)
    return (near, far) if _counters().get(near) is not None else None


def _counters() -> dict[str, tuple[int, int]]:
    """Per interface of this namespace: (packets received, packets sent)."""
    out = {}
    with open("/proc/net/dev") as f:
        for line in f.readlines()[2:]:
            name, _, rest = line.partition(":")
            values = rest.split()
            out[name.strip()] = (int(values[1]), int(values[9]))
    return out


@dataclass
class Sinkhole:
    near: str
    far: str
    seen: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def packets(self) -> int:
        """Packets that went into the sinkhole so far (sent by the near end)."""
        counters = _counters()
        return counters[self.near][1] + counters[self.far][1]

    def start(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind((self.far, 0))
        self._thread = threading.Thread(target=self._capture, name="sinkhole", daemon=True)
        self._thread.start()

    def _capture(self) -> None:
        while True:
            try:
                frame = self._sock.recv(65535)
            except OSError:
                return
            with self._lock:
                if len(self.seen) < MAX_KEPT:
                    self.seen.append(describe(frame))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def since(self, count: int) -> list[str]:
        """What the capture kept after the first ``count`` descriptions."""
        with self._lock:
            return list(self.seen[count:])

    def mark(self) -> tuple[int, int]:
        with self._lock:
            return self.packets(), len(self.seen)

    def report(self, mark: tuple[int, int]) -> tuple[int, list[str]]:
        """Packets that left since ``mark``, and what they were."""
        packets, kept = mark
        return self.packets() - packets, self.since(kept)


def describe(frame: bytes) -> str:
    """One line about an Ethernet frame: ARP, IPv4 TCP/UDP (a DNS query's name), or else."""
    if len(frame) < 14:
        return f"runt frame ({len(frame)} bytes)"
    (ethertype,) = struct.unpack("!H", frame[12:14])
    body = frame[14:]
    if ethertype == 0x0806 and len(body) >= 28:
        return f"ARP who-has {ipaddress.IPv4Address(body[24:28])}"
    if ethertype == 0x86DD:
        return "IPv6 packet"
    if ethertype != 0x0800 or len(body) < 20:
        return f"ethertype 0x{ethertype:04x}"
    ihl = (body[0] & 0x0F) * 4
    proto = body[9]
    src, dst = ipaddress.IPv4Address(body[12:16]), ipaddress.IPv4Address(body[16:20])
    payload = body[ihl:]
    if proto in (6, 17) and len(payload) >= 4:
        sport, dport = struct.unpack("!HH", payload[:4])
        kind = "TCP" if proto == 6 else "UDP"
        text = f"{kind} {src}:{sport} -> {dst}:{dport}"
        if proto == 17 and dport == 53:
            text += f" DNS query {dns_name(payload[8:])!r}"
        return text
    return f"IPv4 proto {proto} {src} -> {dst}"


def dns_name(message: bytes) -> str:
    """The first question's name of a DNS message (best effort)."""
    labels, i = [], 12
    while i < len(message) and message[i] and len(labels) < 64:
        n = message[i]
        labels.append(message[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    return ".".join(labels)
