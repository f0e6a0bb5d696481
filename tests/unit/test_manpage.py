"""The man page documents every command and option the CLI has."""

from pathlib import Path

import click

from onionshare_bt.cli import main
from onionshare_bt.errors import ExitCode

MAN = (Path(__file__).resolve().parents[2] / "man" / "obt.1").read_text()
TEXT = MAN.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "")


def commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        yield f"{prefix}{name}", cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{prefix}{name} ")


def test_every_command_and_option_is_in_the_man_page():
    missing = []
    for path, cmd in commands(main):
        if path.split()[-1] not in TEXT:
            missing.append(path)
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and not getattr(param, "hidden", False) \
                        and opt not in TEXT:
                    missing.append(f"{path} {opt}")
    for param in main.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--") and opt not in ("--version", "--help") and opt not in TEXT:
                missing.append(opt)
    assert missing == []


def test_every_exit_code_is_documented():
    section = TEXT.split(".SH EXIT STATUS", 1)[1].split(".SH", 1)[0]
    for code in ExitCode:
        assert f".B {int(code)}\n" in section, code
