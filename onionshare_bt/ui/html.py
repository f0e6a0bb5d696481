"""The web UI's HTML: every page drawn from the operations' results (pure: no I/O).

Every value that comes from a result, a form or a file name goes through :func:`e`
(``html.escape`` with quotes), so a share named ``<script>…`` is shown, never run; the
pages carry no inline script or style (the Content-Security-Policy forbids both). A live
value has ``data-t`` (torrent id) and ``data-k`` (field) or ``data-o`` (overview field)
attributes, which ``static/ui.js`` fills from the server-sent events.
"""

from __future__ import annotations

import html
import json
from urllib.parse import quote

from .. import configfile
from ..onion import MAX_ONIONS
from .security import Session

NAV = (("/", "Overview"), ("/shares", "Shares"), ("/downloads", "Downloads"),
       ("/search", "Search"), ("/trust", "Trust"), ("/mirrors", "Mirrors"),
       ("/releases", "Releases"), ("/settings", "Settings"))


def e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def size(n: object) -> str:
    if not isinstance(n, (int, float)):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def rate(n: object) -> str:
    return f"{size(n)}/s" if isinstance(n, (int, float)) else "–"


def eta(row: dict) -> str:
    left = (row.get("wanted") or 0) - (row.get("done") or 0)
    speed = row.get("rate_down") or 0
    if row.get("state") == "complete" or row.get("role") == "share":
        return "–"
    if left <= 0:
        return "0 s"
    if speed <= 0:
        return "∞"
    secs = int(left / speed)
    return f"{secs // 3600} h {secs // 60 % 60} min" if secs >= 3600 else (
        f"{secs // 60} min {secs % 60} s" if secs >= 60 else f"{secs} s")


def percent(row: dict) -> str:
    return f"{100 * float(row.get('progress') or 0):.1f} %"


def live_fields(row: dict) -> dict:
    """What the live updates change in a torrent's row (see static/ui.js)."""
    return {"state": row.get("state", ""), "pct": percent(row),
            "progress": row.get("progress") or 0, "done": size(row.get("done")),
            "rate_down": rate(row.get("rate_down")), "rate_up": rate(row.get("rate_up")),
            "eta": eta(row), "peers": str(row.get("peers", 0)), "path": str(row.get("path") or "")}


def page(title: str, body: str, session: Session, *, live: bool = False) -> str:
    flash = "".join(f'<p class="flash {e(kind)}" role="status">{e(text)}</p>'
                    for kind, text in session.take_flash())
    nav = "".join(f'<a href="{href}">{e(name)}</a>' for href, name in NAV)
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{e(title)} · obt</title>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=stylesheet href="/static/ui.css">'
        '<script src="/static/ui.js" defer></script></head>'
        f'<body{" data-live=1" if live else ""}><header><strong>obt</strong><nav>{nav}</nav>'
        f"</header><main><h1>{e(title)}</h1>{flash}{body}</main></body></html>"
    )


def form(action: str, session: Session, fields: str, button: str, *, cls: str = "") -> str:
    return (f'<form method=post action="{e(action)}" class="{e(cls)}">'
            f'<input type=hidden name=csrf value="{e(session.csrf)}">{fields}'
            f"<button type=submit>{e(button)}</button></form>")


def hidden(name: str, value: object) -> str:
    return f'<input type=hidden name="{e(name)}" value="{e(value)}">'


def table(head: tuple[str, ...], rows: list[str], empty: str) -> str:
    if not rows:
        return f"<p class=empty>{e(empty)}</p>"
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def tr(cells: list[str], tid: str | None = None) -> str:
    """A table row of cells that are already HTML; ``tid`` names the torrent it shows."""
    attr = f' data-row="{e(tid)}"' if tid else ""
    return f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def name_cell(r: dict) -> str:
    return f'<span class=name>{e(r.get("name"))}</span><br><small>{e(r["id"][:16])}</small>'


def live(tid: str, key: str, text: str) -> str:
    return f'<span data-t="{e(tid)}" data-k="{e(key)}">{e(text)}</span>'


def kv(pairs: list[tuple[str, str]]) -> str:
    """A definition list; values are already HTML."""
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


# -- pages ---------------------------------------------------------------------------------
def overview(status: dict, relay: dict, ratio: dict, rows: list[dict],
             logs: dict[str, str], session: Session) -> str:
    """:param logs: the tail of each log by name (the node's, its tor's)"""
    o = overview_fields(status, relay, ratio, rows)
    body = kv([
        ("Tor", f'<span data-o=tor>{e(o["tor"])}</span>'),
        ("Relay", f'<span data-o=relay>{e(o["relay"])}</span>'),
        ("Relayed total", f'<span data-o=relayed>{e(o["relayed"])}</span>'),
        ("Download allowance", f'<span data-o=allowance>{e(o["allowance"])}</span>'),
        ("Rates (down / up)", f'<span data-o=rates>{e(o["rates"])}</span>'),
        ("Shares / downloads", e(o["counts"])),
        ("Node", e(f"obt {status.get('version', '?')}, pid {status.get('pid', '?')}, "
                   f"up {status.get('uptime', 0):.0f} s, home {status.get('home', '')}")),
    ])
    if relay.get("enabled"):
        # an image the script reloads every 10 s (a point's step); without it, per page load
        body += ("<h2>Relay rate, last hour</h2><img class=chart data-reload=10 "
                 'src="/relay-chart.svg" width=480 height=120 alt="the relay\'s rate over the '
                 'last hour">')
    for name, text in logs.items():
        body += (f"<h2>Log: {e(name)}</h2>"
                 f'<pre class=log data-o="log-{e(name)}">{e(text)}</pre>')
    return page("Overview", body, session, live=True)


def overview_fields(status: dict, relay: dict, ratio: dict, rows: list[dict]) -> dict:
    boot = status.get("tor", {}).get("bootstrap", {})
    down = sum(r.get("rate_down") or 0 for r in rows)
    up = sum(r.get("rate_up") or 0 for r in rows)
    shares = sum(1 for r in rows if r.get("role") == "share")
    allowance = (f"{size(ratio.get('remaining'))} left of {size(ratio.get('allowance'))} "
                 f"(ratio {ratio.get('ratio', '?')}, used {size(ratio.get('used'))})")
    if ratio.get("exhausted"):
        allowance += " — used up: downloads wait for relay credit"
    return {
        "tor": f"{boot.get('progress', 0)} % — {boot.get('summary', '')}",
        "relay": ("on, " + ("in the consensus" if relay.get("in_consensus") else
                            "not yet in the consensus")) if relay.get("enabled") else "off",
        "relayed": f"{size(relay.get('relayed_total'))} (today {size(relay.get('relayed_today'))})",
        "allowance": allowance,
        "rates": f"{rate(down)} / {rate(up)}",
        "counts": f"{shares} / {len(rows) - shares}",
    }


def shares(rows: list[dict], public: set[str], session: Session,
           preview: dict | None = None, asked: str = "", error: str = "", *,
           include_hidden: bool = False, onions: int = 2) -> str:
    """:param onions: the node's K, what the share form proposes"""
    body = "<h2>Share a file or folder</h2>"
    body += ('<form method=get action="/shares" class=inline>'
             f'<label>Local path <input name=path value="{e(asked)}" required size=50></label>'
             "<label><input type=checkbox name=include_hidden value=1"
             f'{" checked" if include_hidden else ""}> with hidden files</label>'
             "<button type=submit>Show what will be shared</button></form>")
    if error:
        body += f'<p class="flash error" role=alert>{e(error)}</p>'
    if preview is not None:
        body += _preview(preview, session, include_hidden, onions)
    out = []
    for r in rows:
        tid = r["id"]
        is_public = tid in public
        uri = e(r.get("uri"))
        described = ("" if is_public else
                     '<input name=description size=20 maxlength=1024 placeholder="description'
                     ' (optional)" aria-label="description in the public catalogue"> ')
        actions = form(f"/shares/{quote(tid)}/publish", session,
                       hidden("public", "0" if is_public else "1") + described,
                       "Unpublish" if is_public else "Publish publicly", cls="inline")
        actions += form(f"/shares/{quote(tid)}/unshare", session, "", "Unshare", cls="inline")
        out.append(tr([
            name_cell(r), e(size(r.get("size"))), live(tid, "state", r.get("state", "")),
            live(tid, "peers", str(r.get("peers", 0))),
            live(tid, "rate_up", rate(r.get("rate_up"))),
            f'<input class=uri readonly value="{uri}" aria-label="URI">'
            f'<button type=button class=copy data-copy="{uri}" hidden>Copy</button>',
            "public" if is_public else "private",
            f'<a href="/shares/{quote(tid)}/peers">peers</a> {actions}'], tid))
    body += "<h2>Shares</h2>" + table(
        ("Name", "Size", "State", "Peers", "Up", "URI", "Catalogue", ""), out, "No shares yet.")
    return page("Shares", body, session, live=True)


def _preview(p: dict, session: Session, include_hidden: bool, onions: int) -> str:
    files = p.get("files", [])
    listed = "".join(f"<li>{e(f['path'])} <small>({e(size(f['size']))})</small></li>"
                     for f in files[:200])
    more = f"<li>… and {len(files) - 200} more</li>" if len(files) > 200 else ""
    hidden_note = (f"<p>{int(p.get('hidden_skipped', 0))} hidden file(s) or folder(s) "
                   "are left out.</p>") if p.get("hidden_skipped") else ""
    return (
        "<section class=preview><h3>Will be shared</h3>"
        f"<p><strong>{e(p.get('path'))}</strong>: {len(files)} file(s), "
        f"{e(size(p.get('size')))}.</p>"
        "<p class=warn>Anyone with the share's URI can download these files and see their "
        "names and sizes; publishing it publicly lists it for every node that trusts this one. "
        "Files may carry identifying metadata (obt share --scrub cleans copies).</p>"
        f"<ul class=files>{listed}{more}</ul>{hidden_note}"
        + form("/shares", session,
               hidden("path", p.get("path"))
               + (hidden("include_hidden", "1") if include_hidden else "")
               + f'<label>Onions (K) <input type=number name=onions min=1 max={MAX_ONIONS} '
               f'value="{int(onions)}" required></label> '
               "<label><input type=checkbox name=scrub value=1> share cleaned copies "
               "(metadata scrubbed)</label> "
               "<label><input type=checkbox name=public value=1> publish it in the public "
               "catalogue</label> <label>description <input name=description size=40 "
               'maxlength=1024 placeholder="searchable; with publish"></label> ',
               "Share these files")
        + "</section>")


def peers(info: dict, session: Session) -> str:
    paths = [f"<tr><td>{e(p.get('direction'))}</td><td>{e(p.get('onion', '')[:16])}…</td>"
             f"<td>{e(p.get('lane', 0))}</td>"
             f"<td>{e(size(p.get('down')))}</td><td>{e(size(p.get('up')))}</td>"
             f"<td>{e(p.get('active'))}</td></tr>" for p in info.get("paths", [])]
    body = f"<p>Torrent {e(info.get('id'))}</p>" + table(
        ("Direction", "Onion", "Lane", "Received", "Sent", "Connections"), paths,
        "No bridge paths.") + _growth(info.get("growth"))
    return page("Peers", body, session)


def _growth(growth: dict | None) -> str:
    """How a download's path count grew (onionshare_bt.multiplex.growth)."""
    if not isinstance(growth, dict):
        return ""
    why = f": {growth.get('reason')}" if growth.get("reason") else ""
    steps = [f"<tr><td>{e(s.get('paths'))}</td><td>{e(size(s.get('rate_before')))}/s</td>"
             f"<td>{e(size(s.get('rate_after')))}/s</td>"
             f"<td>{'kept' if s.get('kept') else 'closed'}</td></tr>"
             for s in growth.get("steps", []) if isinstance(s, dict)]
    return (f"<p class=growth>Paths: {e(growth.get('paths'))} of at most "
            f"{e(growth.get('max_paths'))} ({e(growth.get('state'))}{e(why)})</p>"
            + (table(("Paths tried", "Rate before", "Rate with it", ""), steps, "")
               if steps else ""))


def downloads(rows: list[dict], session: Session) -> str:
    box = ('<label>URI <input name=uri required size=70 '
           'placeholder="http://….onion/private/…"></label>')
    body = form("/downloads", session, box, "Download", cls="inline")
    out = []
    for r in rows:
        tid = r["id"]
        bar = (f'<progress data-t="{e(tid)}" data-k=progress max=1 '
               f'value="{float(r.get("progress") or 0):.4f}"></progress> ')
        out.append(tr([
            name_cell(r), e(size(r.get("size"))), live(tid, "state", r.get("state", "")),
            bar + live(tid, "pct", percent(r)), live(tid, "done", size(r.get("done"))),
            live(tid, "rate_down", rate(r.get("rate_down"))), live(tid, "eta", eta(r)),
            live(tid, "peers", str(r.get("peers", 0))),
            f'<small>{live(tid, "path", r.get("path") or "")}</small>{_reason(r)}',
            f'<a href="/downloads/{quote(tid)}/peers">bytes per path</a> '
            + _pause_button(r, session)
            + form(f"/downloads/{quote(tid)}/remove", session, "", "Remove", cls="inline")],
            tid))
    body += "<h2>Downloads</h2>" + table(
        ("Name", "Size", "State", "Progress", "Done", "Rate", "ETA", "Peers", "Where", ""),
        out, "No downloads yet.")
    return page("Downloads", body, session, live=True)


def _pause_button(r: dict, session: Session) -> str:
    """Resume for a paused download, Pause for one in progress, nothing for the rest."""
    state, tid = r.get("state"), quote(r["id"])
    if state == "paused":
        return form(f"/downloads/{tid}/resume", session, "", "Resume", cls="inline")
    if state in ("complete", "moving", "error"):
        return ""
    return form(f"/downloads/{tid}/pause", session, "", "Pause", cls="inline")


def _reason(r: dict) -> str:
    text = r.get("error") or r.get("reason")
    return f"<br><small class=reason>{e(text)}</small>" if text else ""


def _items(items: list[dict], session: Session, degree: bool) -> str:
    """Catalogue items (a search's results, or one node's catalogue), each with Fetch."""
    out = [tr([f"<span class=name>{e(i.get('name'))}</span>"
               + (f"<br><small class=description>{e(i.get('description'))}</small>"
                  if i.get("description") else ""),
               e(size(i.get("size"))), e(i.get("files"))]
              + ([e(i.get("degree")), f"<small>{e(str(i.get('node', ''))[:16])}…</small>"]
                 if degree else [])
              + [form("/downloads", session, hidden("uri", i.get("uri")), "Fetch",
                      cls="inline")])
           for i in items]
    head = ("Name", "Size", "Files") + (("Degree", "Node") if degree else ()) + ("",)
    return table(head, out, "Nothing found.")


def catalogue(uri: str, data: dict | None, session: Session, error: str = "") -> str:
    body = f"<p>Public catalogue <code>{e(uri)}</code></p>"
    if error:
        body += f'<p class="flash error" role=alert>{e(error)}</p>'
    if data is not None:
        body += _items(data.get("items", []), session, degree=False)
    return page("Catalogue", body, session)


def search(q: str, data: dict | None, session: Session, error: str = "") -> str:
    body = ('<form method=get action="/search" class=inline>'
            f'<label>Search the trusted nodes <input name=q value="{e(q)}" required></label>'
            "<button type=submit>Search</button></form>")
    if error:
        body += f'<p class="flash error" role=alert>{e(error)}</p>'
    if data is not None:
        body += f"<p>{int(data.get('searched', 0))} node(s) searched.</p>"
        body += _items(data.get("results", []), session, degree=True)
        gone = data.get("unreachable") or []
        if gone:
            names = ", ".join(e(str(u.get("onion", ""))[:16]) for u in gone)
            body += f"<p>Unreachable: {names}</p>"
    return page("Search", body, session)


def trust(info: dict, me: dict, session: Session) -> str:
    catalogue = f'<input class=uri readonly value="{e(me.get("public_uri"))}">'
    body = kv([("This node", f"<code>{e(me.get('onion'))}</code>"),
               ("Public catalogue", catalogue)])
    body += form("/trust/add", session, '<label>Trust a node <input name=onion required size=64 '
                 'placeholder="….onion"></label>', "Trust", cls="inline")
    body += form("/trust/depth", session, f'<label>Depth <input name=depth type=number min=1 max=6 '
                 f'value="{e(info.get("depth"))}"></label>', "Set depth", cls="inline")
    out = [f"<tr><td><code>{e(o)}</code></td><td>"
           f"{form('/trust/remove', session, hidden('onion', o), 'Remove', cls='inline')}</td></tr>"
           for o in info.get("trusted", [])]
    body += "<h2>Trusted nodes</h2>" + table(("Node", ""), out, "This node trusts no one yet.")
    body += ('<p><a href="/trust/graph">Walk the trusted nodes to the trust depth and draw '
             "what answers</a> (takes a while over Tor).</p>")
    return page("Trust", body, session)


def mirrors(rows: list[dict], session: Session) -> str:
    box = ('<label>Mirror a node <input name=onion required size=64 placeholder="….onion">'
           '</label><label><input type=checkbox name=follow value=1> follow its changes</label>')
    body = form("/mirrors/add", session, box, "Mirror", cls="inline")
    out = [tr([f"<code>{e(m.get('source'))}</code>",
               f'<input class=uri readonly value="{e(m.get("public_uri"))}">',
               e(len(m.get("items") or [])), "yes" if m.get("follow") else "no",
               e(m.get("error") or ("synced" if m.get("synced") else "not yet synced")),
               form("/mirrors/remove", session, hidden("onion", m.get("source")), "Remove",
                    cls="inline")])
           for m in rows]
    body += "<h2>Mirrors</h2>" + table(
        ("Source", "Mirror's public URI", "Items", "Follow", "State", ""), out,
        "This node mirrors no one.")
    return page("Mirrors", body, session)


def releases(rows: list[dict], session: Session) -> str:
    body = ("<p>Signed releases of obt found on the trusted nodes are fetched, verified and "
            "seeded; none is ever installed.</p>")
    body += form("/releases/check", session, "", "Check for updates", cls="inline")
    out = [tr([e(r.get("version")), e(r.get("state")),
               f"<small>{e(r.get('path') if r.get('state') == 'verified' else '')}</small>",
               f"<small>{e(r.get('source') or '')}</small>", e(r.get("reason") or "")])
           for r in rows]
    body += "<h2>Releases</h2>" + table(("Version", "State", "Folder", "From", "Note"), out,
                                        "No releases known.")
    return page("Releases", body, session)


def trust_graph(data: dict, picture: str, session: Session) -> str:
    """:param picture: the graph as SVG (:func:`.graph.svg`)"""
    nodes = data.get("nodes") or []
    gone = sum(1 for n in nodes if not n.get("reachable", True))
    body = (f"<p>Depth {e(data.get('depth'))}: {len(nodes)} node(s) reached through trust, "
            f"{gone} unreachable. Hover a node for its address.</p>")
    return page("Trust graph", body + f"<div class=graph>{picture}</div>", session)


def settings(values: dict, session: Session) -> str:
    """The settings the node runs with, and a form for those the UI may change, filled
    with what config.toml says (or the default)."""
    values = dict(values)
    in_file = values.pop("file", None) or {}
    fields = []
    for key in configfile.UI_KEYS:
        now = in_file.get(key, configfile.default(key))
        if isinstance(now, bool):
            options = "".join(f"<option{' selected' if now is v else ''}>{json.dumps(v)}"
                              "</option>" for v in (True, False))
            box = f'<select name="{e(key)}">{options}</select>'
        else:
            box = f'<input name="{e(key)}" value="{e(now)}" size=24>'
        fields.append(f"<tr><th><label>{e(key)}</label></th><td>{box}</td></tr>")
    edit = form("/settings", session,
                f"<table class=settings><tbody>{''.join(fields)}</tbody></table>",
                "Save to config.toml")
    file_name = f"{values.get('home')}/config.toml"
    rows = [f"<tr><th>{e(k)}</th><td><code>{e(json.dumps(v))}</code></td></tr>"
            for k, v in values.items()]
    body = (f"<h2>Change</h2><p>Saved to <code>{e(file_name)}</code>; the node takes them "
            "when it restarts. Programs, tor options, networks and release keys are set in "
            "that file only, never here.</p>" + edit
            + "<h2>Running with</h2>"
            f"<table class=settings><tbody>{''.join(rows)}</tbody></table>")
    return page("Settings", body, session)
