"""A running lab guest: QEMU process, QMP, serial console and SSH.

Typical use::

    image = build_image()
    with Guest(image) as guest:          # boots through GRUB, waits for SSH
        guest.ssh("cat /proc/mdstat")
        guest.pull_disk("disk1")         # the disk vanishes from the bus
        guest.insert_blank_disk("disk2", serial="DRPLAB-NEW0")

Every wait polls against a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from drplab.build import LabImage, locked
from drplab.config import accel_args, qemu_binary, restore_enabled
from drplab.inventory import known_hosts_line, write_inventory, write_known_hosts
from drplab.qmp import QMP, QMPError
from drplab.saved import STATE_FILE, SavedState, directory, load, state_key
from drplab.util import WaitTimeoutError, free_port, wait_until

log = logging.getLogger("drplab.guest")

ADDRESS = "127.0.0.1"
NIC_ID = "nic0"
#: The management port: a second NIC on its own user-mode network (guest eth1, configured
#: by systemd-networkd while eth0 is ifupdown's), like a rescue/IPMI network.
MGMT_NIC_ID = "nic1"
MGMT_NET = "10.0.3.0/24"


class LabError(RuntimeError):
    """The guest did not do what the lab expected (did not boot, QEMU died, ...)."""


@dataclass(frozen=True)
class IOFault:
    """A real I/O error the disk returns (QEMU ``blkdebug``): ``op`` on 512-byte ``sector``.

    ``op`` is ``"read"`` or ``"write"``; every such request touching the guest's sector
    fails with EIO (``once``: only the first), as a disk with a bad sector does, while
    the disk stays on the bus. The faulted disk is a raw copy, so sectors are the guest's.

    One bad data sector does not make md fail a member: md records the write error in
    the member's bad-block log and keeps it in sync (``write_error,want_replacement``).
    It fails the member when it cannot record the error either: fault the bad-block
    log's sectors too (``mdadm --examine``: ``Super Offset`` + ``Bad Block Log`` offset).
    """

    op: str
    sector: int
    once: bool = False

    def rule(self) -> dict[str, Any]:
        """The blkdebug ``inject-error`` rule."""
        if self.op not in ("read", "write"):
            raise ValueError(f"IOFault op must be read or write, not {self.op!r}")
        return {
            "event": f"{self.op}_aio",
            "iotype": self.op,
            "errno": 5,
            "sector": self.sector,
            "once": self.once,
        }


@dataclass
class Disk:
    """A virtio disk of the guest (``name`` is the QEMU device id)."""

    name: str
    image: Path
    serial: str
    fmt: str = "qcow2"
    attached: bool = False
    bootindex: int | None = None
    faults: tuple[IOFault, ...] = ()

    def blockdev(self) -> str:
        """The ``-blockdev`` argument; a disk with faults is raw over ``blkdebug``."""
        if not self.faults:
            return (
                f"driver={self.fmt},node-name={self.node},"
                f"file.driver=file,file.filename={self.image}"
            )
        return json.dumps(
            {
                "driver": self.fmt,
                "node-name": self.node,
                "file": {
                    "driver": "blkdebug",
                    "image": {"driver": "file", "filename": str(self.image)},
                    "inject-error": [fault.rule() for fault in self.faults],
                },
            }
        )

    @property
    def node(self) -> str:
        """The QEMU block node name."""
        return f"node-{self.name}"

    @property
    def by_id(self) -> str:
        """Where the guest's udev links this disk."""
        return f"/dev/disk/by-id/virtio-{self.serial}"


class _Console:
    """Drains the serial console socket into a buffer and a transcript file."""

    def __init__(self, path: Path, transcript: Path) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(path))
        self._lock = threading.Condition()
        self._buf = ""
        self._pos = 0
        self._closed = False
        self._transcript = transcript.open("a", encoding="utf-8", errors="replace")
        self._thread = threading.Thread(target=self._pump, name="drplab-console", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            try:
                chunk = self._sock.recv(4096)
            except OSError:
                chunk = b""
            text = chunk.decode("utf-8", errors="replace")
            with self._lock:
                if not chunk:
                    self._closed = True
                    self._lock.notify_all()
                    return
                self._buf += text
                self._transcript.write(text)
                self._transcript.flush()
                self._lock.notify_all()

    def read(self) -> str:
        with self._lock:
            text = self._buf[self._pos :]
            self._pos = len(self._buf)
            return text

    def expect(self, pattern: str, timeout: float) -> str:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                match = regex.search(self._buf, self._pos)
                if match:
                    text = self._buf[self._pos : match.end()]
                    self._pos = match.end()
                    return text
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    tail = self._buf[-2000:]
                    raise WaitTimeoutError(
                        f"console: no match for {pattern!r} in {timeout:.0f}s:\n{tail}"
                    )
                self._lock.wait(left)

    def write(self, text: str) -> None:
        self._sock.sendall(text.encode())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(timeout=5)
        self._transcript.close()


def sweep_stale_workdirs(tmp: Path | None = None) -> list[Path]:
    """Remove the work directories of guests whose QEMU is gone; return them.

    A test run killed with SIGKILL (or a CI job cancelled) never reaches
    ``Guest.stop``: its ``drplab-NAME-*`` directory (overlays of a few hundred MB)
    stays behind. A directory is removed only when its ``qemu.pid`` names a process
    that no longer exists; one without it (a guest starting right now) is left.
    """
    removed: list[Path] = []
    for workdir in Path(tmp or tempfile.gettempdir()).glob("drplab-*"):
        pidfile = workdir / "qemu.pid"
        try:
            pid = int(pidfile.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            continue
        if pid > 0 and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(workdir, ignore_errors=True)
            removed.append(workdir)
    return removed


class Guest:
    """One lab guest on qcow2 overlays of a :class:`LabImage`."""

    def __init__(
        self,
        image: LabImage,
        *,
        name: str = "lab1",
        memory_mib: int = 1024,
        smp: int = 1,
        workdir: Path | None = None,
        detached: bool = False,
        faults: Mapping[str, Sequence[IOFault]] | None = None,
        cold: bool = False,
    ) -> None:
        self.image = image
        self.name = name
        self.memory_mib = memory_mib
        self.smp = smp
        self.detached = detached
        self.faults = dict(faults or {})
        #: boot through GRUB at start, instead of restoring the saved boot (drplab.saved)
        self.cold = cold
        self._workdir_arg = workdir
        self.workdir: Path | None = None
        self.port = 0
        self.mgmt_port = 0
        self.disks: dict[str, Disk] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._qmp: QMP | None = None
        self._console: _Console | None = None
        self._pid: int | None = None  # QEMU's, for a guest attached to (``attach``)
        self.timings: dict[str, float] = {}

    @classmethod
    def attach(
        cls, image: LabImage, *, name: str, workdir: Path, port: int, mgmt_port: int, pid: int
    ) -> Guest:
        """A handle on a guest another process started detached (``python -m drplab up``).

        SSH, QMP, power and disks work as on the handle that started it; the disks are
        read back from QEMU (``query-block``). Stopping it is ``drplab down``'s job.
        """
        if not pid_alive(pid):
            raise LabError(f"lab host {name} is not running (QEMU pid {pid} is gone)")
        guest = cls(image, name=name, workdir=workdir, detached=True)
        guest.workdir, guest.port, guest.mgmt_port, guest._pid = workdir, port, mgmt_port, pid
        guest._qmp = QMP(guest.qmp_socket)
        for block in guest._qmp.execute("query-block"):
            # a -device's block backend: /machine/peripheral/disk0/virtio-backend
            parts = str(block.get("qdev", "")).split("/")
            inserted = block.get("inserted")
            if inserted and len(parts) > 3 and parts[2] == "peripheral":
                guest.disks[parts[3]] = Disk(
                    parts[3], Path(inserted["file"]), "", fmt=inserted["drv"], attached=True
                )
        return guest

    # ------------------------------------------------------------------ paths

    def _path(self, leaf: str) -> Path:
        if self.workdir is None:
            raise LabError("guest not started")
        return self.workdir / leaf

    @property
    def qmp_socket(self) -> Path:
        """QMP unix socket."""
        return self._path("qmp.sock")

    @property
    def console_socket(self) -> Path:
        """Serial console unix socket (the lab's out-of-band path)."""
        return self._path("console.sock")

    @property
    def console_log(self) -> Path:
        """Transcript of the serial console."""
        return self._path("console.log")

    @property
    def known_hosts(self) -> Path:
        """known_hosts file holding the guest's host key at its forwarded port."""
        return self._path("known_hosts")

    @property
    def address(self) -> str:
        """Address SSH reaches the guest on."""
        return ADDRESS

    @property
    def ssh_key(self) -> Path:
        """Private key root accepts."""
        return self.image.ssh_key

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Guest:
        if self.proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _qemu_argv(self) -> list[str]:
        # An attached guest dies with the Python process that started it.
        prefix = [] if self.detached else ["setpriv", "--pdeathsig", "KILL"]
        argv = [
            *prefix,
            qemu_binary(),
            "-name",
            f"drplab-{self.name}",
            "-machine",
            "pc",
            *accel_args(),
            "-m",
            str(self.memory_mib),
            "-smp",
            str(self.smp),
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-chardev",
            f"socket,id=console,path={self.console_socket},server=on,wait=off",
            "-serial",
            "chardev:console",
            "-chardev",
            f"socket,id=qmp,path={self.qmp_socket},server=on,wait=off",
            "-mon",
            "chardev=qmp,mode=control",
            "-netdev",
            f"user,id=net0,hostfwd=tcp:{ADDRESS}:{self.port}-:22",
            "-device",
            f"virtio-net-pci,netdev=net0,id={NIC_ID}",
            "-netdev",
            f"user,id=net1,net={MGMT_NET},hostfwd=tcp:{ADDRESS}:{self.mgmt_port}-:22",
            "-device",
            f"virtio-net-pci,netdev=net1,id={MGMT_NIC_ID}",
            "-pidfile",
            str(self._path("qemu.pid")),
        ]
        for disk in self.disks.values():
            argv += ["-blockdev", disk.blockdev(), "-device", self._device_spec(disk)]
        return argv

    @staticmethod
    def _device_spec(disk: Disk) -> str:
        spec = f"virtio-blk-pci,drive={disk.node},id={disk.name},serial={disk.serial}"
        if disk.bootindex is not None:
            spec += f",bootindex={disk.bootindex}"
        return spec

    def start(self, *, wait: bool = True, timeout: float = 600.0) -> None:
        """Create overlays, start QEMU and, if ``wait``, wait for SSH.

        A fresh guest restores the image's saved boot (:mod:`drplab.saved`: ~5 s, and
        SSH is always waited for then; a faulted disk is a raw copy of the saved one)
        unless it is ``cold`` or ``DRP_LAB_RESTORE=0``; then, or if the restore fails,
        it boots through GRUB.
        """
        if self.proc is not None:
            raise LabError("guest already started")
        if not self.cold and restore_enabled():
            saved = saved_state(self.image, memory_mib=self.memory_mib, smp=self.smp)
            try:
                self._start(saved, wait=True, timeout=timeout)
                return
            except (LabError, QMPError, WaitTimeoutError) as exc:
                log.warning("restoring %s failed, booting instead: %s", saved.path, exc)
        self._start(None, wait=wait, timeout=timeout)

    def _start(self, saved: SavedState | None, *, wait: bool, timeout: float) -> None:
        started = time.monotonic()
        self.disks = {}
        if self._workdir_arg is not None:
            self._workdir_arg.mkdir(parents=True, exist_ok=True)
            self.workdir = self._workdir_arg
        else:
            sweep_stale_workdirs()
            # Short path: unix socket paths are limited to 107 bytes.
            self.workdir = Path(tempfile.mkdtemp(prefix=f"drplab-{self.name}-"))
        try:
            for index, (name, serial, base) in enumerate(
                zip(self.image.disk_names, self.image.disk_serials, self.image.disks, strict=True)
            ):
                faults = tuple(self.faults.get(name, ()))
                backing = saved.disks[name] if saved is not None else base
                if faults:  # blkdebug sectors are the guest's: a raw (sparse) copy
                    overlay = self._path(f"{name}.raw")
                    create = ["convert", "-q", "-O", "raw", str(backing), str(overlay)]
                else:
                    overlay = self._path(f"{name}.qcow2")
                    create = ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing)]
                    create.append(str(overlay))
                subprocess.run(["qemu-img", *create], check=True)
                self.disks[name] = Disk(
                    name,
                    overlay,
                    serial,
                    fmt="raw" if faults else "qcow2",
                    attached=True,
                    bootindex=index,
                    faults=faults,
                )
            incoming = (
                []
                if saved is None
                else ["-incoming", f"exec:gzip -dc <{shlex.quote(str(saved.stream))}"]
            )
            self._launch(incoming)
            if not self.detached:
                self._console = _Console(self.console_socket, self.console_log)
            self.timings["qemu_start"] = round(time.monotonic() - started, 1)
            if saved is not None:
                self._resume_restored(timeout)
                self.timings["restore_to_ssh"] = round(time.monotonic() - started, 1)
            elif wait:
                self.wait_ssh(timeout)
                self.timings["boot_to_ssh"] = round(time.monotonic() - started, 1)
        except BaseException:
            self.stop()
            raise

    def _resume_restored(self, timeout: float) -> None:
        """Run a guest QEMU loaded from a saved boot: links up, SSH, the clock set."""

        def loaded() -> bool:
            self._check_alive()
            return bool(self.qmp("query-migrate").get("status") == "completed")

        wait_until(loaded, 120, interval=0.1, what="QEMU to load the saved boot")
        self.qmp("cont")
        # saved with no network backend (drplab.saved): the NICs came back unplugged
        self.set_link(True)
        self.set_link(True, mgmt=True)
        self.wait_ssh(timeout)
        # the guest's clock stopped when it was saved. Its timers go first: a jump over
        # a calendar time (apt-daily at 18:00) would start their jobs now, and one held
        # dpkg's lock under a test's `dpkg --unpack` (CI, 2026-12-07 20:50)
        self.ssh(
            "systemctl stop '*.timer' 2>/dev/null || true; "
            f"date -u -s @{time.time():.3f} >/dev/null",
            check=True,
        )

    def save_state(self, target: Path, *, timeout: float = 300.0) -> SavedState:
        """Save this running guest into ``target`` (see :mod:`drplab.saved`); QEMU is then stopped.

        The guest is saved once systemd has finished booting, with its NICs' user-mode
        networks removed first: restored, those would hand eth0 a new DHCP address at
        the next boot (a fresh one is made by the restoring QEMU).
        """
        # exits with sync's status: a boot that ended "degraded" is saved as it is
        self.ssh("systemctl is-system-running --wait; sync", check=True, timeout=timeout)
        self.qmp("stop")
        for netdev in ("net0", "net1"):
            self.qmp("netdev_del", id=netdev)
        target.mkdir(parents=True, exist_ok=True)
        stream = target / STATE_FILE
        self.qmp("migrate", uri=f"exec:gzip -1 >{shlex.quote(str(stream))}")
        wait_until(
            lambda: self.qmp("query-migrate").get("status") in ("completed", "failed"),
            timeout,
            interval=0.2,
            what="QEMU to save the guest",
        )
        if self.qmp("query-migrate").get("status") != "completed":
            raise LabError(f"saving the guest failed: {self.qmp('query-migrate')}")
        self._stop_qemu(timeout=15.0)
        disks = {}
        for name, disk in self.disks.items():
            disks[name] = target / f"{name}.qcow2"
            shutil.move(disk.image, disks[name])
            disks[name].chmod(0o444)
        return SavedState(path=target, disks=disks)

    def _launch(self, extra: Sequence[str] = ()) -> None:
        """Start QEMU on a free port; retry if another process took the port first."""
        for _attempt in range(5):
            self.port = free_port(ADDRESS)
            self.mgmt_port = free_port(ADDRESS)
            write_known_hosts(
                self.known_hosts,
                [
                    known_hosts_line(self.image.host_key, port, ADDRESS)
                    for port in (self.port, self.mgmt_port)
                ],
            )
            for stale in (self.qmp_socket, self.console_socket):
                stale.unlink(missing_ok=True)
            qemu_log = self._path("qemu.log").open("ab")
            try:
                self.proc = subprocess.Popen(
                    [*self._qemu_argv(), *extra],
                    stdin=subprocess.DEVNULL,
                    stdout=qemu_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=self.detached,
                )
            finally:
                qemu_log.close()
            with contextlib.suppress(WaitTimeoutError):
                wait_until(self._qmp_connected, 30, interval=0.05, what="QEMU's QMP socket")
            if self._qmp is not None:
                return
            text = self._path("qemu.log").read_text(errors="replace")
            self._kill()
            if "hostfwd" not in text and "Could not set up host forwarding" not in text:
                raise LabError(f"QEMU failed to start:\n{text[-3000:]}")
            log.info("port %d was taken, retrying", self.port)
        raise LabError("could not start QEMU on a free port")

    def _qmp_connected(self) -> bool:
        """Poll: connect QMP once QEMU listens; True also when QEMU has exited."""
        if not self.alive():
            return True
        if not self.qmp_socket.exists():
            return False
        try:
            self._qmp = QMP(self.qmp_socket)
        except (OSError, QMPError):
            return False
        return True

    def _kill(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self.proc = None

    def alive(self) -> bool:
        """Whether QEMU is still running."""
        if self._pid is not None:
            return pid_alive(self._pid)
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop QEMU (``quit``, then SIGKILL) and remove the work directory."""
        self._stop_qemu(timeout)
        if self.workdir is not None and self._workdir_arg is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir = None if self._workdir_arg is None else self.workdir

    def _stop_qemu(self, timeout: float) -> None:
        if self._qmp is not None and self.alive():
            with contextlib.suppress(OSError, QMPError, TimeoutError):
                self._qmp.execute("quit")
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self._kill()
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._console is not None:
            self._console.close()
            self._console = None

    def release(self) -> None:
        """Forget a detached guest without stopping it (``drplab up``)."""
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        self.proc = None
        self._pid = None

    # ------------------------------------------------------------------ QMP

    def qmp(self, command: str, **arguments: Any) -> Any:
        """Run a QMP command."""
        if self._qmp is None:
            raise LabError("guest not started")
        return self._qmp.execute(command, **arguments)

    def pull_disk(self, name: str, *, timeout: float = 30.0) -> Disk:
        """Unplug disk ``name`` as if pulled from its bay; returns it (image kept)."""
        disk = self.disks[name]
        if self._qmp is None or not disk.attached:
            raise LabError(f"disk {name} is not attached")
        self._qmp.execute("device_del", id=name)
        self._qmp.wait_event("DEVICE_DELETED", timeout=timeout, data={"device": name})
        self._qmp.execute("blockdev-del", **{"node-name": disk.node})
        disk.attached = False
        return disk

    def insert_disk(
        self,
        image: Path,
        name: str,
        *,
        serial: str | None = None,
        fmt: str = "qcow2",
        bootindex: int | None = None,
    ) -> Disk:
        """Hot-plug an existing image (e.g. the one just pulled) as virtio disk ``name``."""
        if self._qmp is None:
            raise LabError("guest not started")
        old = self.disks.get(name)
        if old is not None and old.attached:
            raise LabError(f"disk {name} is attached already")
        if serial is None:
            serial = old.serial if old is not None else name.upper()
        disk = Disk(name, image.resolve(), serial, fmt=fmt, bootindex=bootindex)
        self._qmp.execute(
            "blockdev-add",
            **{
                "driver": fmt,
                "node-name": disk.node,
                "file": {"driver": "file", "filename": str(disk.image)},
            },
        )
        args: dict[str, Any] = {
            "driver": "virtio-blk-pci",
            "drive": disk.node,
            "id": name,
            "serial": serial,
        }
        if bootindex is not None:
            args["bootindex"] = bootindex
        try:
            self._qmp.execute("device_add", **args)
        except QMPError:
            self._qmp.execute("blockdev-del", **{"node-name": disk.node})
            raise
        disk.attached = True
        self.disks[name] = disk
        return disk

    def insert_blank_disk(
        self,
        name: str,
        *,
        size: str = "2G",
        serial: str | None = None,
        bootindex: int | None = None,
    ) -> Disk:
        """Create a blank qcow2 of ``size`` and hot-plug it (a new disk from the datacenter)."""
        image = self._path(f"{name}.qcow2")
        if image.exists():
            raise LabError(f"{image} exists already")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), size], check=True)
        return self.insert_disk(image, name, serial=serial, bootindex=bootindex)

    def set_link(self, up: bool, *, mgmt: bool = False) -> None:
        """Plug (``True``) or unplug (``False``) the primary network cable (``mgmt``: eth1's)."""
        self.qmp("set_link", name=MGMT_NIC_ID if mgmt else NIC_ID, up=up)

    def power_cycle(self, *, wait: bool = True, timeout: float = 600.0, mgmt: bool = False) -> None:
        """Hard reset (``system_reset``); if ``wait``, wait until SSH shows a new boot id."""
        old = self._boot_id_or_none(mgmt=mgmt) if wait else None
        self.qmp("system_reset")
        if wait:
            self.wait_boot(old, timeout=timeout, mgmt=mgmt)

    # ------------------------------------------------------------------ SSH

    def ssh_argv(self, *, connect_timeout: int = 10, mgmt: bool = False) -> list[str]:
        """``ssh`` argv up to (not including) the remote command; strict host key checking.

        ``mgmt``: through the management port (eth1) instead of the primary one (eth0).
        """
        return [
            "ssh",
            "-F",
            "/dev/null",
            "-i",
            str(self.image.ssh_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
            "-p",
            str(self.mgmt_port if mgmt else self.port),
            f"root@{ADDRESS}",
        ]

    def ssh(
        self,
        command: str,
        *,
        check: bool = False,
        timeout: float = 120.0,
        input_text: str | None = None,
        connect_timeout: int = 10,
        mgmt: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` as root in the guest through the ``ssh`` binary (``mgmt``: eth1)."""
        argv = [*self.ssh_argv(connect_timeout=connect_timeout, mgmt=mgmt), command]
        try:
            result = subprocess.run(
                argv,
                input=input_text,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=None if input_text is not None else subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            result = subprocess.CompletedProcess(argv, 255, "", f"timed out after {timeout}s")
            if check:
                raise LabError(f"ssh {command!r}: timed out after {timeout:.0f}s") from exc
        if check and result.returncode != 0:
            raise LabError(
                f"ssh {command!r} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def _check_alive(self) -> None:
        if not self.alive():
            raise LabError(f"QEMU exited; console tail:\n{self.console_tail()}")

    def wait_ssh(self, timeout: float = 600.0) -> None:
        """Wait until ``ssh true`` succeeds."""

        def ready() -> bool:
            self._check_alive()
            return self.ssh("true", timeout=20, connect_timeout=5).returncode == 0

        try:
            wait_until(ready, timeout, interval=1.0, what=f"SSH on {ADDRESS}:{self.port}")
        except WaitTimeoutError as exc:
            last = self.ssh("true", timeout=20, connect_timeout=5)
            raise LabError(
                f"{exc}\nlast ssh error: {last.stderr.strip()}\n"
                f"console tail:\n{self.console_tail()}"
            ) from exc

    def console_tail(self, chars: int = 3000) -> str:
        """The end of the console transcript (for error messages)."""
        try:
            return self.console_log.read_text(errors="replace")[-chars:]
        except (OSError, LabError):
            return ""

    def boot_id(self, *, mgmt: bool = False) -> str:
        """The guest kernel's boot id (changes at every boot)."""
        command = "cat /proc/sys/kernel/random/boot_id"
        return self.ssh(command, check=True, mgmt=mgmt).stdout.strip()

    def _boot_id_or_none(self, *, mgmt: bool = False) -> str | None:
        result = self.ssh(
            "cat /proc/sys/kernel/random/boot_id", timeout=20, connect_timeout=5, mgmt=mgmt
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def wait_boot(
        self, old_boot_id: str | None, *, timeout: float = 600.0, mgmt: bool = False
    ) -> str:
        """Wait until SSH answers with a boot id other than ``old_boot_id``; return it."""

        def new_boot() -> str | None:
            self._check_alive()
            current = self._boot_id_or_none(mgmt=mgmt)
            return current if current and current != old_boot_id else None

        started = time.monotonic()
        boot = wait_until(new_boot, timeout, interval=1.0, what="the guest to boot again")
        self.timings["last_boot"] = round(time.monotonic() - started, 1)
        return boot

    def reboot(self, *, timeout: float = 600.0) -> str:
        """``systemctl reboot`` and wait for the new boot; return the new boot id."""
        old = self.boot_id()
        self.ssh("systemctl reboot", timeout=30)
        return self.wait_boot(old, timeout=timeout)

    # ------------------------------------------------------------------ console

    def _need_console(self) -> _Console:
        if self._console is None:
            raise LabError("no console reader (detached guest?)")
        return self._console

    def console_read(self) -> str:
        """Console output received since the last read/expect."""
        return self._need_console().read()

    def console_write(self, text: str) -> None:
        """Type ``text`` on the serial console."""
        self._need_console().write(text)

    def console_expect(self, pattern: str, *, timeout: float = 60.0) -> str:
        """Wait for regex ``pattern`` on the console; return the output up to its end."""
        return self._need_console().expect(pattern, timeout)

    def console_login(self, *, timeout: float = 120.0) -> None:
        """Log in as root on the serial console (like IPMI serial-over-LAN)."""
        deadline = time.monotonic() + timeout
        # Forget what the console printed so far: a login prompt from an earlier boot
        # must not be answered while this boot is still under way.
        self.console_read()

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        def prompt() -> bool:
            self.console_write("\r")
            try:
                self.console_expect(r"login: $|login: ", timeout=min(5.0, left()))
            except WaitTimeoutError:
                return False
            return True

        wait_until(prompt, left(), interval=0.1, what="a login prompt on the console")
        self.console_write("root\r")
        self.console_expect(r"Password: ", timeout=left())
        self.console_write(self.image.root_password + "\r")
        self.console_expect(r"# ", timeout=left())

    # ------------------------------------------------------------------ drp

    def write_inventory(self, path: Path, *, host: str | None = None, merge: bool = True) -> Path:
        """Write (or merge) a drp inventory entry for this guest into ``path``."""
        return write_inventory(
            path,
            host or self.name,
            address=ADDRESS,
            port=self.port,
            key=self.image.ssh_key,
            known_hosts=self.known_hosts,
            fallback=[{"address": f"{ADDRESS}:{self.mgmt_port}", "jump": "none"}],
            merge=merge,
        )


def saved_state(image: LabImage, *, memory_mib: int = 1024, smp: int = 1) -> SavedState:
    """The saved boot of ``image`` (:mod:`drplab.saved`), booting and saving it the first time.

    Made under a lock and published with an atomic rename, like the image itself: a
    concurrent caller waits for it, and a killed one leaves no half-saved state behind.
    """
    final = directory(image, state_key(image, memory_mib, smp))
    found = load(final)
    if found is not None:
        return found
    with locked(image.path / "booted.lock"):
        found = load(final)
        if found is not None:
            return found
        for leftover in image.path.glob(".booted-*"):  # a saver killed before its rename
            shutil.rmtree(leftover, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".booted-", dir=image.path))
        try:
            log.info("booting %s once to save its booted state", image.path.name)
            with Guest(image, name="saved", memory_mib=memory_mib, smp=smp, cold=True) as guest:
                state = guest.save_state(work)
            state.write_meta()
            shutil.rmtree(final, ignore_errors=True)
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    found = load(final)
    if found is None:
        raise LabError(f"the saved boot at {final} cannot be read back")
    return found


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (and is not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
