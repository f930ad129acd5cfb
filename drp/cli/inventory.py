"""``drp inventory``: list and show hosts, and trust a host's SSH key after checking it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from drp.cli.common import InventoryOption, dump_yaml, interactive, open_inventory
from drp.cli.console import make_console
from drp.errors import HostKeyError, InputError

if TYPE_CHECKING:
    from drp.inventory import Host

app = typer.Typer(help="Inspect the inventory and trust host keys.", no_args_is_help=True)


@app.command("list")
def list_hosts(
    pattern: str = typer.Argument("all", help="Host, group or glob pattern."),
    inventory: Path = InventoryOption,
) -> None:
    """List hosts matching PATTERN with their address, groups and connection path.

    Example: drp inventory list databases -i inventory/example.yaml
    """
    inv = open_inventory(inventory)
    table = Table("host", "address", "user", "groups", "fallback", "jump")
    for host in inv.select(pattern):
        table.add_row(
            host.name,
            f"{host.address}:{host.port}",
            host.user or "",
            ", ".join(host.groups),
            ", ".join(f"{a.host}:{a.port}" for a in host.fallback),
            host.jump.name if host.jump else "",
        )
    console = make_console()
    console.print(table)
    if inv.groups:
        console.print("groups: " + ", ".join(f"{g} ({len(m)})" for g, m in inv.groups.items()))


def _describe(host: Host) -> dict[str, object]:
    return {
        "address": f"{host.address}:{host.port}",
        "user": host.user,
        "key": host.key,
        "known_hosts": host.known_hosts,
        "connect_timeout": host.connect_timeout,
        "fallback": [f"{a.host}:{a.port}" for a in host.fallback],
        "jump": _describe(host.jump) | {"name": host.jump.name} if host.jump else None,
        "become": {"user": host.become.user, "password_env": host.become.password_env}
        if host.become
        else None,
        "reboot_command": host.reboot_command,
        "boot_id_command": host.boot_id_command,
        "groups": list(host.groups),
        "vars": host.vars,
    }


@app.command("show")
def show_host(
    host: str = typer.Argument(..., help="Inventory host name."), inventory: Path = InventoryOption
) -> None:
    """Show everything drp resolved for one host (merged group and host vars).

    Example: drp inventory show db1 -i inventory/example.yaml
    """
    inv = open_inventory(inventory)
    typer.echo(f"{host}:")
    typer.echo("  " + dump_yaml(_describe(inv.get(host))).replace("\n", "\n  ").rstrip())


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
