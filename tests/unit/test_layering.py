"""The package's imports run one way: down the floors of :data:`LAYERS`, and no two rooms
(a folder of the package, or a module at its top) import each other, directly or round a
loop; nor does a room borrow another's private names (``_name``), which have no home to
be kept in step from.

Every module of ``onionshare_bt`` is read with :mod:`ast`, its imports inside functions as
well as at the top, so a lazy import cannot hide an upward one. A failure names each
offending import as ``file:line: from -> to``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import onionshare_bt

PACKAGE = Path(onionshare_bt.__file__).parent
NAME = PACKAGE.name

#: The floors, from the ground up. A module may import its own floor and the floors below.
#: A name is a folder of the package, a module at its top, or a module inside a folder (the
#: longest name that matches a module places it); ``cli`` is ``cli.py`` as well as a ``cli/``
#: package, ``store`` is ``store.py`` as well as ``store/``.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # pure modules: no I/O; they import nothing of obt but each other
    ("ground", frozenset({
        "__init__", "errors", "text", "onion", "uri", "liveness",
        "trust.protocol",
        # the pure cores of the parts: functions, frozen dataclasses, small state machines
        "tracker.core", "tracker.announce", "tracker.peers", "tracker.metafile", "multiplex.core", "relay.core",
        "trust.core", "mirror.core", "stream.core", "cast.core", "cast.ogg", "cast.wire",
    })),
    # the only speakers to Tor, libtorrent and SQLite, the settings, the shared helpers
    ("foundations", frozenset({"tor", "engine", "store", "config", "configfile", "httpserve",
                               "tasks"})),
    # the parts of a node, each given what it needs by the node
    ("parts", frozenset({
        "tracker", "multiplex", "relay", "trust", "mirror", "release", "stream", "scan",
        "torrents", "swarm", "cast", "watchdog",
    })),
    # the node: its lifetime, its operations, its faces (the control socket, the web UI) and
    # the daemon; the UI builds the operations' typed requests, as the control socket does
    ("node", frozenset({"node", "ops", "api", "control", "ui", "daemon"})),
    # what only the command line (and the tests) start: the private Tor network, the demo
    ("tools", frozenset({"testnet", "demo"})),
    # the command line
    ("face", frozenset({"cli", "commands", "output", "__main__"})),
)


@dataclass(frozen=True)
class Import:
    path: Path  # the importing file
    line: int
    source: str  # dotted module name inside the package ("tracker.client"; "__init__" the root)
    target: str
    names: tuple[str, ...] = ()  # the names taken (``from target import names``)

    def __str__(self) -> str:
        return (f"{self.path.relative_to(PACKAGE.parent)}:{self.line}: "
                f"{self.source} -> {self.target}")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = PACKAGE.joinpath(*dotted.split(".")) if dotted else PACKAGE
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _inside(name: str) -> str | None:
    """``onionshare_bt.x.y`` -> ``x.y``; ``onionshare_bt`` -> ``""``; else None."""
    if name == NAME:
        return ""
    return name[len(NAME) + 1:] if name.startswith(NAME + ".") else None


def imports_of(path: Path, text: str | None = None) -> list[Import]:
    """Every import of a module of the package by ``path`` (its ``text``, read from the file
    if not given), resolved to module names."""
    source = module_name(path)
    package = source if path.name == "__init__.py" else source.rpartition(".")[0]
    if source == "__init__":
        package = ""
    if text is None:
        text = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(text, str(path))):
        targets: list[tuple[str, tuple[str, ...]]] = []
        if isinstance(node, ast.Import):
            targets = [(t, ()) for a in node.names if (t := _inside(a.name)) is not None]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = _inside(node.module or "")
                if module is None:
                    continue
            for alias in node.names:  # ``from . import core`` imports the module ``core``
                sub = f"{module}.{alias.name}" if module else alias.name
                targets.append((sub, ()) if _is_module(sub) else (module, (alias.name,)))
        merged: dict[str, tuple[str, ...]] = {}
        for target, names in targets:
            merged[target] = merged.get(target, ()) + names
        for target, names in merged.items():
            found.append(Import(path, node.lineno, source, target or "__init__", names))
    return sorted(found, key=lambda i: i.line)


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def floor_of(module: str) -> int | None:
    """The index in :data:`LAYERS` of the longest name that places ``module``."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        for index, (_, names) in enumerate(LAYERS):
            if name in names:
                return index
    return None


def room_of(module: str) -> str:
    """The folder of the package a module is in, or the module itself at the top."""
    return module.split(".")[0]


def upward(imports: list[Import]) -> list[str]:
    out = []
    for i in imports:
        below, above = floor_of(i.source), floor_of(i.target)
        if below is not None and above is not None and above > below:
            out.append(f"{i} runs upward ({LAYERS[below][0]} -> {LAYERS[above][0]})")
    return out


def module_of(module: str) -> str:
    """A module is its own room (for loops between the modules of one folder)."""
    return module


def cycles(imports: list[Import], room_of=room_of) -> list[list[str]]:
    """The rooms that import each other round a loop (strongly connected components of
    two or more rooms, Tarjan's algorithm), each with the imports that tie it. A room is a
    folder by default; with ``room_of=module_of``, each module."""
    graph: dict[str, set[str]] = {}
    for i in imports:
        a, b = room_of(i.source), room_of(i.target)
        graph.setdefault(a, set())
        graph.setdefault(b, set())
        if a != b:
            graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(room: str) -> None:
        index[room] = low[room] = len(index)
        stack.append(room)
        on_stack.add(room)
        for nxt in sorted(graph[room]):
            if nxt not in index:
                visit(nxt)
                low[room] = min(low[room], low[nxt])
            elif nxt in on_stack:
                low[room] = min(low[room], index[nxt])
        if low[room] == index[room]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == room:
                    break
            if len(component) > 1:
                components.append(component)

    for room in sorted(graph):
        if room not in index:
            visit(room)
    return [[f"{i}" for i in imports
             if room_of(i.source) in c and room_of(i.target) in c
             and room_of(i.source) != room_of(i.target)]
            for c in components]


def borrowed(imports: list[Import]) -> list[str]:
    """Imports of another room's private module or name."""
    out = []
    for i in imports:
        if room_of(i.source) == room_of(i.target):
            continue
        private = [n for n in i.names if n.startswith("_") and not n.startswith("__")]
        private += [p for p in i.target.split(".") if p.startswith("_") and p != "__init__"]
        if private:
            out.append(f"{i} borrows {', '.join(private)}")
    return out


def test_every_module_has_a_floor():
    modules = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))
    homeless = [m for m in modules if floor_of(m) is None]
    assert not homeless, ("modules in no layer of LAYERS (tests/unit/test_layering.py); "
                          f"place them: {homeless}")


def test_no_import_runs_upward():
    bad = upward(all_imports())
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_two_rooms_import_each_other():
    loops = cycles(all_imports())
    assert not loops, "rooms that import each other:\n" + "\n\n".join(
        "\n".join(edges) for edges in loops)


def test_no_two_modules_import_each_other():
    """Not even round a loop inside one folder, nor for type hints alone (an import under
    ``TYPE_CHECKING`` counts): a folder's modules stand on each other one way. A package's
    ``__init__`` gathers its modules' names, so its own imports of them are left out."""
    imports = [i for i in all_imports()
               if not (i.path.name == "__init__.py" and i.target.startswith(i.source + "."))]
    loops = cycles(imports, room_of=module_of)
    assert not loops, "modules that import each other:\n" + "\n\n".join(
        "\n".join(edges) for edges in loops)


def test_no_room_borrows_another_rooms_private_names():
    bad = borrowed(all_imports())
    assert not bad, "private names used outside their room:\n" + "\n".join(bad)


def test_the_reader_sees_lazy_and_relative_imports():
    """The reader itself: imports inside functions are found, relative ones resolved, and
    ``from . import x`` is the module ``x`` when there is one."""
    text = ("from ..errors import Refused\n"
            "import onionshare_bt.uri\n"
            "def later():\n"
            "    if True:\n"
            "        from .. import node\n"
            "    from . import core\n"
            "    from .core import Announce\n")
    found = imports_of(PACKAGE / "tracker" / "client.py", text)
    assert [(i.line, i.source, i.target) for i in found] == [
        (1, "tracker.client", "errors"), (2, "tracker.client", "uri"),
        (5, "tracker.client", "node"), (6, "tracker.client", "tracker.core"),
        (7, "tracker.client", "tracker.core")]


def test_an_upward_import_and_a_loop_are_caught():
    """The checks themselves, on made-up imports: a part importing the node, and two
    parts importing each other."""
    made = [Import(PACKAGE / "tracker" / "client.py", 7, "tracker.client", "node"),
            Import(PACKAGE / "trust" / "server.py", 3, "trust.server", "mirror.core"),
            Import(PACKAGE / "mirror" / "auth.py", 5, "mirror.auth", "trust.identity")]
    assert upward(made) == [f"{NAME}/tracker/client.py:7: tracker.client -> node "
                            "runs upward (parts -> node)"]
    assert cycles(made) == [[f"{NAME}/trust/server.py:3: trust.server -> mirror.core",
                             f"{NAME}/mirror/auth.py:5: mirror.auth -> trust.identity"]]
    inside = [Import(PACKAGE / "torrents" / "shares.py", 26, "torrents.shares", "torrents.swarm"),
              Import(PACKAGE / "torrents" / "swarm.py", 27, "torrents.swarm", "torrents.shares")]
    assert cycles(inside) == []  # one folder: no loop between rooms
    assert cycles(inside, room_of=module_of) == [[
        f"{NAME}/torrents/shares.py:26: torrents.shares -> torrents.swarm",
        f"{NAME}/torrents/swarm.py:27: torrents.swarm -> torrents.shares"]]
    private = [Import(PACKAGE / "trust" / "server.py", 9, "trust.server", "tracker.server",
                      ("TrackerServer", "_strip_server_header")),
               Import(PACKAGE / "scan" / "stage.py", 20, "scan.stage", "scan.formats", ("_copy",))]
    assert borrowed(private) == [f"{NAME}/trust/server.py:9: trust.server -> tracker.server "
                                 "borrows _strip_server_header"]
