"""The node's middle relay: a second tor process, never an exit.

It is separate from the client tor on purpose. Tor counts no "bytes relayed for others"
in a process that also carries its own traffic, and warns against running a relay and an
onion service in one process. In this process every byte is someone else's, so its traffic
counters are exactly what the node gave back to the network.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from onionshare_bt.errors import TorError
from onionshare_bt.tor.process import TorProcess
from onionshare_bt.tor.network import Network
from onionshare_bt.tor.torrc import process_options, render

__all__ = ["RelaySettings", "RelayTor", "relay_torrc", "fingerprint_of"]


@dataclasses.dataclass(frozen=True)
class RelaySettings:
    """What the user chose for the relay.

    :param nickname: 1-19 letters and digits; empty leaves tor's default (the driver gives
        each node a random one of its own: a shared or product-named nickname would label
        every obt user's IP address in the consensus)
    :param or_port: ``"auto"`` or a port number; a public relay needs a reachable fixed port
    :param bandwidth_rate: bytes/s on average (``BandwidthRate``)
    :param bandwidth_burst: bytes/s at most (``BandwidthBurst``)
    :param contact: ``ContactInfo``; empty unless the user sets one
    """

    nickname: str = ""
    or_port: str = "auto"
    bandwidth_rate: int = 1024 * 1024
    bandwidth_burst: int = 2 * 1024 * 1024
    contact: str = ""


def relay_torrc(data_dir: Path, network: Network, owner_pid: int, settings: RelaySettings) -> str:
    """Build the relay's torrc (pure): a non-exit relay with a control port and no SOCKS."""
    options = [
        *process_options(data_dir, owner_pid),
        ("SocksPort", "0"),
        *([("Nickname", settings.nickname)] if settings.nickname else []),
        ("ORPort", settings.or_port if network.is_public else f"127.0.0.1:{settings.or_port}"),
        ("ExitRelay", "0"),
        ("ExitPolicy", "reject *:*"),
        ("IPv6Exit", "0"),
        ("BandwidthRate", str(settings.bandwidth_rate)),
        ("BandwidthBurst", str(max(settings.bandwidth_burst, settings.bandwidth_rate))),
        ("PublishServerDescriptor", "1"),
    ]
    if settings.contact:
        options.append(("ContactInfo", settings.contact))
    return render([*options, *network.relay_options])


def fingerprint_of(data_dir: Path, tor_binary: str) -> str:
    """The relay's identity fingerprint, creating its keys if needed (``--list-fingerprint``).

    Known before the relay starts, so the client tor can exclude its own relay from its
    circuits: the node's own downloads then never count as relayed for others.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    empty = data_dir / "empty"
    empty.write_bytes(b"")
    try:
        out = subprocess.run(
            [tor_binary, "-f", str(empty), "--defaults-torrc", str(empty),
             "--list-fingerprint", "--DataDirectory", str(data_dir),
             "--ORPort", "auto", "--Log", "err stderr", "--GeoIPFile", "",
             "--GeoIPv6File", ""],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise TorError(f"cannot create the relay's keys: {exc}") from exc
    fields = out.strip().splitlines()[-1].split()
    return "".join(fields[1:]).upper()


class RelayTor(TorProcess):
    """The relay process (a :class:`~.process.TorProcess` with the relay's torrc)."""

    def __init__(self, data_dir: Path, network: Network, settings: RelaySettings, **kwargs) -> None:
        super().__init__(data_dir, network, **kwargs)
        self.settings = settings

    def _torrc(self) -> str:
        return relay_torrc(self.data_dir, self.network, self.owner_pid, self.settings)

    async def fingerprint(self) -> str:
        return (await self._call(self._ctl().get_info, "fingerprint")).strip().upper()

    async def traffic(self) -> tuple[int, int]:
        """Bytes this tor process has read and written since it started."""
        ctl = self._ctl()
        read = await self._call(ctl.get_info, "traffic/read")
        written = await self._call(ctl.get_info, "traffic/written")
        return int(read), int(written)

    async def or_address(self) -> str:
        listeners = await self._call(self._ctl().get_info, "net/listeners/or")
        return listeners.split()[0].strip('"') if listeners.strip() else ""
