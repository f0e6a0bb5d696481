"""``obt ui``: a one-time link into the node's web UI."""

from __future__ import annotations

import click

from ..ops import requests as rq
from . import client
from . import render as r
from .base import command, json_option


@click.command()
@click.option("--onion", is_flag=True,
              help="Also publish the UI on an onion service of its own and print its link.")
@click.option("--client-auth", is_flag=True,
              help="Publish that onion behind Tor v3 client authorization; print the key "
                   "Tor Browser asks for.")
@click.option("--browser", is_flag=True, help="Open the link in the default web browser.")
@json_option
@command
async def ui(state, onion, client_auth, browser, as_json):
    """Print a one-time link to the node's management web UI.

    The link is good once, for 10 minutes: the browser that opens it gets a session cookie
    and the token leaves the address bar. The UI listens on 127.0.0.1 only, unless --onion
    publishes it on an onion service (until the node stops), to manage the node from
    elsewhere through Tor Browser. With --client-auth only a Tor holding the printed private
    key can reach that onion at all (a new address; the key is shown this once).
    """
    onion = onion or client_auth
    cfg = await client.node(state)
    info = await client.send(cfg, rq.UiLink(onion=onion, client_auth=client_auth),
                             timeout=120 if onion else 30)
    if browser:
        import webbrowser

        webbrowser.open(info["url"])
    text = info["url"] + (f"\n{info['onion_url']}" if onion else "")
    auth = info.get("client_auth")
    if auth:
        text += (f"\nclient authorization key (Tor Browser asks for it): {auth['private_key']}"
                 f"\nor, for tor's ClientOnionAuthDir (a file ending .auth_private): "
                 f"{auth['auth_private']}")
    r.emit(info, as_json, text)


COMMANDS = (ui,)
