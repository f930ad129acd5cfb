"""``drp inventory``: list and show hosts, and trust a host's SSH key after checking it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from drp.cli.common import (
    InventoryOption,
    dump_yaml,
    echo_json,
    interactive,
    listing_console,
    open_inventory,
)
from drp.cli.console import make_console
from drp.cli.run import FormatOption
from drp.errors import HostKeyError, InputError

if TYPE_CHECKING:
    from drp.inventory import Address, Host

app = typer.Typer(help="Inspect the inventory and trust host keys.", no_args_is_help=True)


@app.command("list")
def list_hosts(
    pattern: str = typer.Argument("all", help="Host, group or glob pattern."),
    inventory: Path = InventoryOption,
    fmt: str = FormatOption,
) -> None:
    """List hosts matching PATTERN with their address, groups and connection path.

    Example: drp inventory list databases -i inventory/example.yaml --format json
    """
    inv = open_inventory(inventory)
    if fmt == "json":
        echo_json([{"name": host.name, **_describe(host)} for host in inv.select(pattern)])
        return
    table = Table("host", "address", "user", "groups", "fallback", "jump")
    for column in table.columns:  # on a narrow terminal, wrap an address: never cut it short
        column.overflow = "fold"
    for host in inv.select(pattern):
        cells = (
            host.name,
            _host_port(host.address, host.port),
            host.user or "",
            ", ".join(host.groups),
            "\n".join(_route(host, a) for a in host.fallback),
            host.jump.name if host.jump else "",
        )
        table.add_row(*(escape(cell) for cell in cells))  # '[fe80::1]' is no markup
    console = listing_console()
    console.print(table)
    if inv.groups:
        console.print("groups: " + ", ".join(f"{g} ({len(m)})" for g, m in inv.groups.items()))


def _host_port(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _route(host: Host, address: Address) -> str:
    """A fallback address and how it is reached: ``addr:port via JUMP`` or ``addr:port direct``."""
    where = _host_port(address.host, address.port)
    bastion = host.jump_for(address)
    return f"{where} via {bastion.name}" if bastion is not None else f"{where} direct"


def _describe(host: Host) -> dict[str, object]:
    return {
        "address": _host_port(host.address, host.port),
        "user": host.user,
        "key": host.key,
        "known_hosts": host.known_hosts,
        "connect_timeout": host.connect_timeout,
        "fallback": [_route(host, a) for a in host.fallback],
        "jump": _describe(host.jump) | {"name": host.jump.name} if host.jump else None,
        "become": {"user": host.become.user, "password_env": host.become.password_env}
        if host.become
        else None,
        "reboot_command": host.reboot_command,
        "boot_id_command": host.boot_id_command,
        "console": _console(host),
        "groups": list(host.groups),
        "vars": host.vars,
    }


def _console(host: Host) -> dict[str, object] | None:
    """The console settings; the password is never in the inventory, only where it comes from."""
    console = host.console
    if console is None:
        return None
    way = {"socket": console.socket} if console.socket else {"command": console.command}
    return way | {
        "user": console.user,
        "password": f"from ${console.password_env}" if console.password_env else "asked",
        "login_prompt": console.login_prompt,
        "password_prompt": console.password_prompt,
        "shell_prompt": console.shell_prompt,
        "timeout": console.timeout,
    }


@app.command("show")
def show_host(
    host: str = typer.Argument(..., help="Inventory host name."), inventory: Path = InventoryOption
) -> None:
    """Show everything drp resolved for one host (merged group and host vars).

    Example: drp inventory show db1 -i inventory/example.yaml
    """
    found = open_inventory(inventory).get(host)  # an unknown host prints nothing on stdout
    typer.echo(f"{host}:")
    typer.echo("  " + dump_yaml(_describe(found)).replace("\n", "\n  ").rstrip())


@app.command("trust")
def trust(
    host: str = typer.Argument(..., help="Inventory host whose SSH key to record."),
    expect: str = typer.Option(
        None,
        "--expect",
        help="Fingerprint obtained out of band (SHA256:...); record only if it matches.",
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="Record without asking (with --expect "
        "this is safe; without it, you trust the network).",
    ),
    fallbacks: bool = typer.Option(
        False, "--fallbacks", help="Also trust the key at each fallback address."
    ),
    inventory: Path = InventoryOption,
) -> None:
    """Fetch a host's SSH key, show its fingerprint, and record it in known_hosts.

    Compare the fingerprint with one obtained out of band (console, provider panel:
    ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) before accepting.

    Example: drp inventory trust db1 --expect SHA256:abc... -i inventory/example.yaml
    """
    from drp.inventory import Address
    from drp.transport.hostkeys import known_hosts_path, record_host_key, scan_host_key

    target = open_inventory(inventory).get(host)
    addresses = [Address(target.address, target.port)]
    if fallbacks:
        addresses += list(target.fallback)
    path = known_hosts_path(target)
    console = make_console()
    for address in addresses:
        key_type, key_b64, fingerprint = scan_host_key(target, address)
        console.print(
            f"{escape(host)} at {address.host}:{address.port} presents {key_type} {fingerprint}"
        )
        if expect and expect != fingerprint:
            raise HostKeyError(
                host,
                f"fingerprint {fingerprint} does not match --expect "
                f"{expect}: NOT recorded (possible man-in-the-middle)",
            )
        if not (yes or expect):
            if not interactive():
                raise InputError("not a terminal: pass --expect FINGERPRINT (or --yes)")
            if not typer.confirm("Does this match the host's real key? Record it", default=False):
                raise typer.Exit(4)
        line = record_host_key(path, target, key_type, key_b64, address=address)
        console.print(f"recorded in {escape(str(path))}: {escape(line[:60])}…")
