"""Command line: ``python -m drplab build|up|down|status|ssh|pull|insert|reset|night``.

``up`` starts a detached lab guest, waits for SSH, writes (merges) a drp
inventory entry and a known_hosts file, and records the guest in
``$DRP_LAB_CACHE/run/NAME.json`` so the other commands find it. ``pull``,
``insert`` and ``reset`` are the datacenter's hands (a disk out of its bay, a
blank one in, the power button); ``night`` breaks the guest as incident A's
night did (lab/README.md: rehearsing that night by hand).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drplab.breaks import night_of_september_2019
from drplab.build import BuildConfig, LabImage, build_image
from drplab.config import cache_dir
from drplab.guest import Guest, pid_alive
from drplab.inventory import remove_inventory_host
from drplab.qmp import QMP, QMPError
from drplab.util import WaitTimeoutError, wait_until


def _run_dir() -> Path:
    path = cache_dir() / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_path(name: str) -> Path:
    return _run_dir() / f"{name}.json"


def _load_state(name: str) -> dict[str, Any] | None:
    path = _state_path(name)
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _ssh_argv(state: dict[str, Any]) -> list[str]:
    return [
        "ssh",
        "-i",
        state["key"],
        "-o",
        f"UserKnownHostsFile={state['known_hosts']}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-p",
        str(state["port"]),
        f"root@{state['address']}",
    ]


def cmd_build(_args: argparse.Namespace) -> int:
    """Build (or find cached) the image and print where it is."""
    started = time.monotonic()
    image = build_image(BuildConfig())
    print(f"image: {image.path} ({time.monotonic() - started:.0f}s)")
    print(f"build times (s): {image.build_seconds}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start a detached guest and write its inventory entry."""
    name: str = args.name
    state = _load_state(name)
    if state is not None and pid_alive(int(state["pid"])):
        print(f"{name} is already up (pid {state['pid']}, port {state['port']})", file=sys.stderr)
        return 1
    started = time.monotonic()
    image = build_image(BuildConfig())
    built = time.monotonic() - started
    guest = Guest(image, name=name, detached=True, memory_mib=args.memory, cold=args.cold)
    guest.start(wait=False)
    assert guest.workdir is not None
    assert guest.proc is not None
    inventory = Path(args.inventory).expanduser().resolve()
    state = {
        "name": name,
        "pid": guest.proc.pid,
        "address": guest.address,
        "port": guest.port,
        "mgmt_port": guest.mgmt_port,
        "key": str(image.ssh_key),
        "known_hosts": str(guest.known_hosts),
        "workdir": str(guest.workdir),
        "qmp": str(guest.qmp_socket),
        "console": str(guest.console_socket),
        "inventory": str(inventory),
        "image": str(image.path),
        "started": time.time(),
    }
    # Recorded before the wait, so `down` can clean up an interrupted `up`.
    _state_path(name).write_text(json.dumps(state, indent=2), encoding="utf-8")
    try:
        guest.wait_ssh(args.timeout)
    except BaseException:
        guest.stop()
        _state_path(name).unlink(missing_ok=True)
        raise
    boot = time.monotonic() - started - built
    guest.write_inventory(inventory)
    guest.release()
    ssh = " ".join(_ssh_argv(state))
    print(
        f"lab host {name} is up: image {built:.0f}s, boot to SSH {boot:.0f}s\n"
        f"  inventory:   {inventory}  (host {name!r}, port {guest.port})\n"
        f"  known_hosts: {guest.known_hosts}\n"
        f"  ssh:         {ssh}\n"
        f"               (or: python -m drplab ssh {name} [COMMAND])\n"
        f"  console:     socat -,raw,echo=0 UNIX-CONNECT:{guest.console_socket}"
        f"  (root password: {image.root_password})\n"
        f"  QMP:         {guest.qmp_socket}\n"
        f"  run drp:     drp run RUNBOOK --inventory {inventory} --host {name} [--dry-run]\n"
        f"               (e.g. drp run raid-rebuild -i {inventory} -H {name} -n)\n"
        f"  stop:        python -m drplab down {name}"
    )
    return 0


def _stop(state: dict[str, Any]) -> None:
    pid = int(state["pid"])
    if pid_alive(pid):
        try:
            with QMP(Path(state["qmp"]), timeout=5) as qmp:
                qmp.execute("quit")
        except (OSError, QMPError, TimeoutError):
            os.kill(pid, signal.SIGTERM)
        try:
            wait_until(lambda: not pid_alive(pid), 15, interval=0.2, what=f"QEMU {pid} to exit")
        except WaitTimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    workdir = Path(state["workdir"])
    if workdir.name.startswith("drplab-"):
        shutil.rmtree(workdir, ignore_errors=True)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop a guest started by ``up`` and remove its inventory entry."""
    state = _load_state(args.name)
    if state is None:
        print(f"no lab host named {args.name}", file=sys.stderr)
        return 1
    _stop(state)
    inventory = Path(state["inventory"])
    if inventory.exists() and remove_inventory_host(inventory, args.name):
        print(f"removed {args.name} from {inventory}")
    _state_path(args.name).unlink()
    print(f"{args.name} is down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """List guests started by ``up``."""
    names = [args.name] if args.name else sorted(p.stem for p in _run_dir().glob("*.json"))
    if not names:
        print("no lab hosts")
        return 0
    for name in names:
        state = _load_state(name)
        if state is None:
            print(f"{name}: unknown")
            continue
        alive = pid_alive(int(state["pid"]))
        uptime = time.time() - float(state["started"])
        print(
            f"{name}: {'running' if alive else 'DEAD'} pid {state['pid']} "
            f"ssh {state['address']}:{state['port']} up {uptime:.0f}s "
            f"inventory {state['inventory']}"
        )
    return 0


def cmd_ssh(args: argparse.Namespace) -> int:
    """Exec ssh into a guest started by ``up``."""
    state = _load_state(args.name)
    if state is None:
        print(f"no lab host named {args.name}", file=sys.stderr)
        return 1
    argv = _ssh_argv(state) + list(args.command)
    os.execvp(argv[0], argv)
    return 0  # pragma: no cover


def _attached(name: str) -> Guest | None:
    """A handle on the running guest ``up`` recorded as ``name`` (None, said, if there is none)."""
    state = _load_state(name)
    if state is None:
        print(
            f"no lab host named {name} (start one: python -m drplab up --name {name})",
            file=sys.stderr,
        )
        return None
    if "mgmt_port" not in state:
        print(f"{name} was started by an older drplab: down, then up again", file=sys.stderr)
        return None
    return Guest.attach(
        LabImage.load(Path(state["image"])),
        name=name,
        workdir=Path(state["workdir"]),
        port=int(state["port"]),
        mgmt_port=int(state["mgmt_port"]),
        pid=int(state["pid"]),
    )


def _on_guest(name: str, act: Callable[[Guest], int]) -> int:
    """``act`` on the running guest ``up`` recorded as ``name`` (1, said, if there is none)."""
    guest = _attached(name)
    if guest is None:
        return 1
    try:
        return act(guest)
    finally:
        guest.release()


def cmd_pull(args: argparse.Namespace) -> int:
    """Pull a disk out of its bay (hot-unplug; its image is kept)."""

    def pull(guest: Guest) -> int:
        if args.disk not in guest.disks:
            have = ", ".join(guest.disks)
            print(f"{args.name} has no disk {args.disk} (it has: {have})", file=sys.stderr)
            return 1
        guest.pull_disk(args.disk)
        print(f"{args.disk} pulled from {args.name}")
        return 0

    return _on_guest(args.name, pull)


def cmd_insert(args: argparse.Namespace) -> int:
    """Slot a blank disk into a free bay (hot-plug)."""

    def insert(guest: Guest) -> int:
        disk = guest.insert_blank_disk(args.disk, size=args.size, serial=args.serial)
        print(f"blank disk {disk.name} ({args.size}) inserted in {args.name}: {disk.by_id}")
        return 0

    return _on_guest(args.name, insert)


def cmd_reset(args: argparse.Namespace) -> int:
    """Press the reset button; wait until the guest is back (on its management port)."""

    def reset(guest: Guest) -> int:
        started = time.monotonic()
        guest.power_cycle(wait=not args.no_wait, timeout=args.timeout, mgmt=True)
        took = "" if args.no_wait else f" and back in {time.monotonic() - started:.0f}s"
        print(f"{args.name} reset{took}")
        return 0

    return _on_guest(args.name, reset)


def cmd_night(args: argparse.Namespace) -> int:
    """Break the guest as the night of September 2019 did (incident A)."""

    def night(guest: Guest) -> int:
        print(f"{args.name}: kernel upgrade started, disk1 dies under it, then a reset ...")
        night_of_september_2019(guest)
        print(
            f"{args.name} is back: md0 degraded (disk1 gone), the newer kernel half-installed,\n"
            f"no primary network (reachable on the management port {guest.mgmt_port} only)"
        )
        return 0

    return _on_guest(args.name, night)


def cmd_image(_args: argparse.Namespace) -> int:
    """Print the cached image metadata (without building)."""
    images = sorted((cache_dir() / "images").glob("*/meta.json"))
    for meta in images:
        print(LabImage.load(meta.parent).to_json())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m drplab",
        description=__doc__,
        epilog="Example: python -m drplab up --name lab1 && "
        "drp run raid-rebuild -i ~/.cache/drp-lab/inventory.yaml -H lab1 --dry-run",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="cmd", required=True)

    def command(name: str, summary: str, example: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, epilog=f"Example: {example}")

    command(
        "build", "build (or reuse) the cached guest image", "python -m drplab build"
    ).set_defaults(func=cmd_build)
    up = command(
        "up",
        "start a lab host and write its drp inventory entry",
        "python -m drplab up --name lab1 --inventory inventory/lab.yaml",
    )
    up.add_argument("--name", default="lab1", help="host name in the inventory")
    up.add_argument(
        "--inventory",
        default=str(cache_dir() / "inventory.yaml"),
        help="inventory file to write/merge (default: %(default)s)",
    )
    up.add_argument("--memory", type=int, default=1024, help="guest RAM in MiB")
    up.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for SSH")
    up.add_argument(
        "--cold",
        action="store_true",
        help="boot through GRUB instead of restoring the image's saved boot (~1 min vs ~5 s)",
    )
    up.set_defaults(func=cmd_up)
    down = command("down", "stop a lab host", "python -m drplab down lab1")
    down.add_argument("name")
    down.set_defaults(func=cmd_down)
    status = command("status", "list lab hosts", "python -m drplab status")
    status.add_argument("name", nargs="?")
    status.set_defaults(func=cmd_status)
    ssh = command("ssh", "ssh into a lab host", "python -m drplab ssh lab1 cat /proc/mdstat")
    ssh.add_argument("name")
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ssh.set_defaults(func=cmd_ssh)
    command("image", "show cached image metadata", "python -m drplab image").set_defaults(
        func=cmd_image
    )
    pull = command("pull", "pull a disk out of a lab host", "python -m drplab pull lab1 disk1")
    pull.add_argument("name")
    pull.add_argument("disk", help="disk0, disk1 or one inserted since")
    pull.set_defaults(func=cmd_pull)
    insert = command(
        "insert",
        "slot a blank disk into a lab host",
        "python -m drplab insert lab1 disk3 --size 2304M --serial DRPLAB-NEW0",
    )
    insert.add_argument("name")
    insert.add_argument("disk", help="a new device id, e.g. disk3")
    insert.add_argument("--size", default="2304M", help="qemu-img size (default: %(default)s)")
    insert.add_argument("--serial", default=None, help="the disk's serial (default: its id)")
    insert.set_defaults(func=cmd_insert)
    reset = command("reset", "hard-reset a lab host", "python -m drplab reset lab1")
    reset.add_argument("name")
    reset.add_argument("--no-wait", action="store_true", help="do not wait for it to boot")
    reset.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for boot")
    reset.set_defaults(func=cmd_reset)
    night = command(
        "night",
        "break a lab host as incident A's night did (disk dies in a kernel upgrade, no network)",
        "python -m drplab night lab1",
    )
    night.add_argument("name")
    night.set_defaults(func=cmd_night)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    code: int = args.func(args)
    return code
