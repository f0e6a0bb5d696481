"""The node's own client tor: a :class:`~.process.TorProcess` that hosts onion services.

::

    async with TorClient(data_dir, Network.load(path)) as tor:
        address, key = await tor.add_onion({80: ("127.0.0.1", 8080)})
        reader, writer = await socks.open_connection(tor.socks_address, peer, 80)

Its onion services are published through :mod:`.publication` (fed by tor's ``HS_DESC``
events), a few at a time by :mod:`.publisher`, and afresh by :mod:`.rescue` when a
descriptor of one reached no HSDir; :mod:`.reach` says when a dead-looking onion is worth
a ``NEWNYM``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from onionshare_bt.errors import TorError
from onionshare_bt.onion import parse_onion
from onionshare_bt.tor.process import TorProcess
from onionshare_bt.tor.publication import Publication
from onionshare_bt.tor.publisher import Publisher
from onionshare_bt.tor.reach import Reach
from onionshare_bt.tor.rescue import Rescue
from onionshare_bt.tor.stemlib import EventType, stem

__all__ = ["TorClient"]

log = logging.getLogger(__name__)

_KEY_TYPE = "ED25519-V3"


def _split_key(key: str) -> tuple[str, str]:
    """Split ``"ED25519-V3:<base64>"`` without ever echoing the key."""
    key_type, sep, content = key.partition(":")
    if not sep or key_type != _KEY_TYPE or not content:
        raise TorError(f"not an onion service key (expected {_KEY_TYPE}:<base64>)")
    return key_type, content


class TorClient(TorProcess):
    """The node's client tor (async context manager); its parameters are
    :class:`~.process.TorProcess`'s."""

    def _fresh(self) -> None:
        """What one tor process has: no process yet, nothing published, nothing queued."""
        super()._fresh()
        self._publication = Publication()
        self._reach = Reach()
        # the publisher removes a service it gives another try without taking it back
        self._publisher = Publisher(self._add_stored, self._delete, self.wait_published,
                                    self._publication.uploaded_once)
        self._rescue = Rescue(self._publication.lost, self._publisher.busy,
                              self._publisher.renew)

    # -- tor's side: its HS_DESC events, its start and its loss -------------------------

    def _started(self) -> None:
        self._rescue.start()

    async def _listen(self, controller: stem.control.Controller) -> None:
        await self._call(controller.add_event_listener, self._on_hs_desc, EventType.HS_DESC)

    def _on_hs_desc(self, event: Any) -> None:
        action, address = event.action, str(event.address)
        hsdir = str(event.directory_fingerprint or event.directory or "")
        if action == stem.HSDescAction.UPLOAD:
            self._post(self._publication.started, address, hsdir,
                       str(event.descriptor_id or ""))
        elif action == stem.HSDescAction.UPLOADED:
            self._post(self._publication.stored, address, hsdir)
        elif action == stem.HSDescAction.FAILED:
            self._post(self._publication.failed, address, hsdir, str(event.reason or ""))

    def _lost_controller(self) -> None:
        super()._lost_controller()
        self._publication.fail_all("tor exited while publishing")

    # -- onion services -----------------------------------------------------------------

    async def add_onion(self, ports: dict[int, tuple[str, int]], key: str | None = None, *,
                        await_publication: bool = True,
                        timeout: float = 60.0,
                        client_auth: str | None = None) -> tuple[str, str]:
        """Publish an ephemeral v3 onion service (``ADD_ONION``).

        :param ports: virtual port -> local ``(host, port)`` it forwards to
        :param key: a key returned by an earlier call, to recreate the same address;
          None creates a new one
        :param await_publication: wait until a first descriptor upload succeeded
        :param timeout: seconds to wait for that upload
        :param client_auth: a client's x25519 public key (base32, see :mod:`.clientauth`):
          only a client holding its private half can reach the service
        :returns: ``(address without .onion, key)``; keep the key secret (0600)
        :raises TorError: if tor refuses (e.g. a malformed key or the service exists)
        :raises Timeout: if no descriptor was uploaded in time (the service is removed)
        """
        key_type, content = _split_key(key) if key is not None else ("NEW", _KEY_TYPE)
        targets = {int(v): f"{host}:{int(port)}" for v, (host, port) in ports.items()}
        response = await self._call(
            self._ctl().create_ephemeral_hidden_service,
            targets, key_type=key_type, key_content=content, await_publication=False,
            client_auth_v3=client_auth)
        address = str(response.service_id)
        if key is None:
            key = f"{response.private_key_type}:{response.private_key}"
        if client_auth is None:
            self._rescue.hosted(address, ports, key)
        if await_publication:
            try:
                await self._publication.wait_first_upload(address, timeout)
            except BaseException:
                await self.remove_onion(address)
                raise
        return address, key

    def restore_onion(self, address: str, ports: dict[int, tuple[str, int]], key: str) -> None:
        """Publish a stored onion service again, in turn (see :mod:`.publisher`): at most a
        few are being published at once, so a burst of them does not wedge tor.

        :param address: its address (known from its key), with or without ``.onion``
        :param ports: as for :meth:`add_onion`
        :param key: the key :meth:`add_onion` returned for it
        :raises BadOnionAddress: if **address** is not a v3 address
        """
        address = parse_onion(address)
        self._rescue.hosted(address, ports, key)
        self._publisher.put(address, ports, key)

    async def _add_stored(self, ports: dict[int, tuple[str, int]], key: str) -> None:
        try:
            await self.add_onion(ports, key, await_publication=False)
        except TorError as exc:  # an earlier ADD_ONION tor answered too late: it has it
            if "collision" not in str(exc).lower():
                raise

    @property
    def renewed(self) -> int:
        """Onion services this tor has published afresh (:mod:`.rescue`) since it started."""
        return self._rescue.renewed

    @property
    def uploads_behind(self) -> int:
        """Descriptor uploads tor has left unanswered for a while (:meth:`.Uploads.behind`)."""
        return self._publication.behind()

    def renew(self, address: str) -> None:
        """Publish a hosted onion service afresh, in turn (:mod:`.publisher`): removed and
        added again, so tor builds and uploads new descriptors at once. :mod:`.rescue`
        does this by itself for a service a descriptor of which reached no HSDir.

        :raises BadOnionAddress: if **address** is not a v3 address
        :raises TorError: if this tor does not host it (or it has client authorization)
        """
        if not self._rescue.renew(parse_onion(address)):
            raise TorError("this tor hosts no such onion service (without client "
                           "authorization)")

    async def wait_published(self, address: str, timeout: float) -> bool:
        """Wait until tor has published **address** (:mod:`.uploads`).

        :returns: True if it is published, False if **timeout** seconds passed first
        :raises TorError: if tor exits meanwhile
        """
        return await self._publication.wait_published(address, timeout)

    def publication(self, addresses: Iterable[str]) -> dict[str, int]:
        """How many of **addresses** (without ``.onion``) this tor has ``published`` since
        it started (:mod:`.uploads`), or has ``uploading``, ``unstored`` or ``queued``
        (:mod:`.publisher`): until published, a client may get a pre-restart descriptor."""
        return self._publication.counts(addresses, self._publisher.queued)

    async def remove_onion(self, address: str) -> None:
        """Stop an onion service this tor hosts (no error if it is already gone).

        :param address: its address, with or without ``.onion``
        :raises BadOnionAddress: if **address** is not a v3 address
        :raises TorError: if tor is not running
        """
        service_id = parse_onion(address)
        self._rescue.dropped(service_id)
        if self._publisher.withdraw(service_id):
            self._publication.forget(service_id)
            return  # tor never had it, or it is removed as soon as it has it
        await self._delete(service_id)

    async def _delete(self, service_id: str) -> None:
        self._publication.forget(service_id)
        if self.is_alive() and not await self._call(
                self._ctl().remove_ephemeral_hidden_service, service_id):
            log.debug("onion service was already gone")

    # -- as a client: stale onion state (see :mod:`.reach`) --------------------------------
    def reached(self, onion: str) -> None:
        """A stream to ``onion`` opened through this tor."""
        self._reach.reached(onion)

    async def failed(self, onion: str) -> None:
        """A stream to ``onion`` failed: its service may have restarted, and tor may hold
        stale state about it; have tor forget it when :class:`.reach.Reach` says so."""
        why = self._reach.failed(onion)
        if why is None:
            return
        log.warning("%s….onion, %s, did not answer; asking tor to forget cached onion "
                    "descriptors (NEWNYM)", onion[:12], why)
        try:
            await self.new_circuit()
        except TorError as exc:
            log.warning("NEWNYM failed: %s", exc.message)

    async def new_circuit(self) -> None:
        """Ask for fresh circuits (``NEWNYM``); it also forgets cached onion descriptors
        and failed directory lookups. Tor rate-limits it to once per 10 s.

        :raises TorError: if tor is not running
        """
        await self._call(self._ctl().signal, stem.Signal.NEWNYM)

    async def restart(self) -> None:
        """Stop tor if it still runs and start it again on the same data dir, this object
        kept (its SOCKS address may change). The onion services it hosted are gone: the
        caller adds them again; whoever waited for one to be published is told.

        :raises TorError: as :meth:`start`
        """
        await self.close()
        self._publication.fail_all("tor restarted while publishing")
        self._fresh()
        await self.start()

    async def close(self) -> None:
        """Stop publishing, close the controller and stop tor (:meth:`.TorProcess.close`).
        Safe to call more than once."""
        await self._rescue.close()
        await self._publisher.close()
        await super().close()
