"""Build the lab guest image, cached by a hash of its inputs.

Two cached stages, each in its own directory named by a sha256 of its inputs:

``rootfs/<key>``
    debootstrap (minbase) of Debian bookworm, configured on the host: SSH host
    key and the lab's authorized key, mdadm.conf naming the future array (its
    UUID is chosen here), an initramfs built in the chroot, GRUB defaults for a
    serial console. Packed into ``root.img`` with ``mkfs.ext4 -d`` (no loop
    devices, no md on the host), plus the kernel and initrd for a direct boot.

``images/<key>``
    the two qcow2 disks of the guest. QEMU boots the kernel directly with
    ``root.img`` attached read-only and ``init=drplab-init``; the provisioning
    script (``guest/provision.sh``, handed over through fw_cfg) partitions the
    two blank virtio disks (GPT: BIOS boot + Linux RAID), creates ``/dev/md0``
    (RAID-1, internal bitmap) with the UUID mdadm.conf already names, copies the
    root file system onto it, runs ``grub-install`` on both disks and
    ``update-grub``, stops the array cleanly and powers off.

Guests then run on qcow2 overlays of these disks; the base stays untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drplab.config import accel_args, cache_dir, debian_mirror, qemu_binary

log = logging.getLogger("drplab.build")

#: Bump when the host-side configuration of the root tree changes.
ROOTFS_VERSION = "4"
#: Bump when the provisioning boot changes in a way its script does not show.
IMAGE_VERSION = "1"

GUEST_DIR = Path(__file__).resolve().parent / "guest"

#: The kernel the image boots (the known-good one) and the newer one whose upgrade the lab
#: interrupts (kept as a .deb in the guest, see SPARE_DEB_DIR). Both are real bookworm kernel
#: ABIs of this mirror (``apt-cache madison linux-image-6.1.0-47-amd64``).
GOOD_KERNEL = "6.1.0-47-amd64"
NEW_KERNEL = "6.1.0-50-amd64"
#: Where the guest keeps the newer kernel's package (``drplab.breaks`` unpacks it).
SPARE_DEB_DIR = "/var/cache/drplab"

PACKAGES: tuple[str, ...] = (
    f"linux-image-{GOOD_KERNEL}",
    f"linux-image-{NEW_KERNEL}",
    "systemd-sysv",
    "dbus",
    "udev",
    "kmod",
    "initramfs-tools",
    "openssh-server",
    "mdadm",
    "gdisk",
    "fdisk",
    "e2fsprogs",
    "grub-pc-bin",
    "grub2-common",
    "iproute2",
    "ifupdown",
    "isc-dhcp-client",
    "iputils-ping",
    "netbase",
    "procps",
    "rsync",
    "less",
)

#: Modules the initramfs carries (MODULES=list: MODULES=dep cannot work in a chroot).
#: virtio_net is loaded in the initramfs so eth0 exists before networking.service
#: runs (ifupdown-pre, which would wait for it, is masked to save ~7 s of boot).
INITRAMFS_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "crc32c_generic",
    "ext4",
    "md_mod",
    "raid1",
)

#: The primary network configuration (ifupdown, eth0 by DHCP).
INTERFACES = (
    "source /etc/network/interfaces.d/*\n\n"
    "auto lo\niface lo inet loopback\n\n"
    "auto eth0\niface eth0 inet dhcp\n"
)

SRC_SERIAL = "DRPLAB-SRC"
MD_NAME = "drplab:0"


class BuildError(RuntimeError):
    """The image build failed; the message ends with the tail of its log."""


@dataclass(frozen=True)
class BuildConfig:
    """Inputs of the image build; all of them go into the cache key."""

    suite: str = "bookworm"
    packages: tuple[str, ...] = PACKAGES
    hostname: str = "drplab"
    root_password: str = "drplab"
    rootfs_size_mib: int = 1280
    disk_size_mib: int = 2048
    disk_names: tuple[str, ...] = ("disk0", "disk1")
    disk_serials: tuple[str, ...] = ("DRPLAB-DISK0", "DRPLAB-DISK1")
    provision_memory_mib: int = 1024
    provision_timeout: float = 900.0


@dataclass(frozen=True)
class LabImage:
    """A built, cached guest image: two qcow2 disks plus what is needed to reach it."""

    path: Path
    key: str
    disk_names: tuple[str, ...]
    disk_serials: tuple[str, ...]
    ssh_key: Path
    host_key: str
    md_uuid: str
    fs_uuid: str
    kernel: str
    hostname: str
    root_password: str
    build_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def disks(self) -> tuple[Path, ...]:
        """Base disk images, in boot order."""
        return tuple(self.path / f"{name}.qcow2" for name in self.disk_names)

    def to_json(self) -> str:
        """Serialise (paths as strings)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["ssh_key"] = str(self.ssh_key)
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def load(cls, path: Path) -> LabImage:
        """Load the image described by ``path/meta.json``."""
        data = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        return cls(
            path=path,
            key=data["key"],
            disk_names=tuple(data["disk_names"]),
            disk_serials=tuple(data["disk_serials"]),
            ssh_key=Path(data["ssh_key"]),
            host_key=data["host_key"],
            md_uuid=data["md_uuid"],
            fs_uuid=data["fs_uuid"],
            kernel=data["kernel"],
            hostname=data["hostname"],
            root_password=data["root_password"],
            build_seconds=dict(data.get("build_seconds", {})),
        )


@dataclass(frozen=True)
class _Rootfs:
    path: Path
    key: str
    host_key: str
    md_uuid: str
    fs_uuid: str
    kernel: str
    seconds: float

    @property
    def image(self) -> Path:
        return self.path / "root.img"


# --------------------------------------------------------------------------- helpers


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (concurrent builds wait for each other)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _run(argv: list[str], logfile: Path, *, input_text: str | None = None) -> None:
    """Run a build command, appending its output to ``logfile``."""
    with logfile.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            input=input_text,
            text=True,
            check=False,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"},
        )
    if result.returncode != 0:
        raise BuildError(
            f"{argv[0]} failed (exit {result.returncode}); log {logfile}:\n{_tail(logfile)}"
        )


def ensure_ssh_key(directory: Path | None = None) -> Path:
    """Return the lab's client key (``id_ed25519`` in the cache), creating it once."""
    directory = directory or cache_dir()
    key = directory / "id_ed25519"
    with locked(directory / "key.lock"):
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "drp-lab", "-f", str(key)],
                check=True,
            )
    key.chmod(0o600)
    return key


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)


def _rmtree(path: Path) -> None:
    """Remove a build tree, refusing while anything is still mounted under it."""
    if not path.exists():
        return
    real = str(path.resolve())
    mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
    busy = [m.split()[1] for m in mounts if m.split()[1].startswith(real + "/")]
    if busy:
        raise BuildError(f"refusing to remove {path}: still mounted: {busy}")
    shutil.rmtree(path)


@contextlib.contextmanager
def _chroot_mounts(tree: Path) -> Iterator[None]:
    """Fresh proc and sysfs in the chroot (never bind mounts of the host's /dev)."""
    mounted: list[Path] = []
    try:
        for fstype, where in (("proc", "proc"), ("sysfs", "sys")):
            target = tree / where
            subprocess.run(["mount", "-t", fstype, fstype, str(target)], check=True)
            mounted.append(target)
        yield
    finally:
        for target in reversed(mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


# --------------------------------------------------------------------------- stage 1


def _rootfs_key(cfg: BuildConfig, pubkey: str) -> str:
    stub = (GUEST_DIR / "drplab-init").read_text(encoding="utf-8")
    return _sha256(
        "rootfs",
        ROOTFS_VERSION,
        cfg.suite,
        " ".join(cfg.packages),
        cfg.hostname,
        cfg.root_password,
        str(cfg.rootfs_size_mib),
        " ".join(INITRAMFS_MODULES),
        pubkey,
        stub,
    )


def _configure_tree(
    tree: Path, cfg: BuildConfig, pubkey: str, md_uuid: str, fs_uuid: str, logfile: Path
) -> str:
    """Configure the debootstrapped tree; return the SSH host public key line."""
    etc = tree / "etc"
    _write(etc / "hostname", f"{cfg.hostname}\n")
    _write(
        etc / "hosts",
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{cfg.hostname}\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n",
    )
    _write(etc / "fstab", f"UUID={fs_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    _write(etc / "network" / "interfaces", INTERFACES)
    # The management port (eth1, its own QEMU user network): configured by systemd-networkd,
    # not ifupdown, as a rescue/IPMI network is, so a broken ifupdown config leaves it up.
    # No default route through it: the primary network keeps the gateway.
    _write(
        etc / "systemd" / "network" / "10-drplab-mgmt.network",
        "[Match]\nName=eth1\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\n\n"
        "[DHCPv4]\nUseRoutes=false\nUseGateway=false\nUseDNS=false\n",
    )
    # Debian's own /etc/default/grub (grub-pc's postinst installs this file with ucf).
    shipped = tree / "usr" / "share" / "grub" / "default" / "grub"
    if shipped.exists():
        _write(etc / "default" / "grub", shipped.read_text(encoding="utf-8"))
    # mdadm.conf names the array before it exists: provisioning creates it with this UUID,
    # so the initramfs built below already assembles it as md0.
    mdadm_conf = etc / "mdadm" / "mdadm.conf"
    conf = mdadm_conf.read_text(encoding="utf-8") if mdadm_conf.exists() else ""
    conf = "\n".join(line for line in conf.splitlines() if not line.startswith("ARRAY"))
    _write(
        mdadm_conf,
        conf.rstrip("\n")
        + f"\n\n# drplab: root array\nARRAY /dev/md0 metadata=1.2 UUID={md_uuid} name={MD_NAME}\n",
    )
    _write(etc / "initramfs-tools" / "conf.d" / "drplab", "MODULES=list\n")
    modules = etc / "initramfs-tools" / "modules"
    existing = modules.read_text(encoding="utf-8") if modules.exists() else ""
    _write(modules, existing + "\n".join(INITRAMFS_MODULES) + "\n")
    _write(
        etc / "default" / "grub.d" / "drplab.cfg",
        "# drplab: serial console (QEMU has no display), short menu timeout.\n"
        "GRUB_TIMEOUT=1\n"
        'GRUB_CMDLINE_LINUX_DEFAULT=""\n'
        'GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 net.ifnames=0"\n'
        'GRUB_TERMINAL="serial"\n'
        'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"\n',
    )
    # Boot faster: ifupdown-pre waits for udev to settle (~7 s under TCG).
    systemd = etc / "systemd" / "system"
    systemd.mkdir(parents=True, exist_ok=True)
    for unit in ("ifupdown-pre.service", "systemd-networkd-wait-online.service"):
        link = systemd / unit
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    _run(["chroot", str(tree), "systemctl", "enable", "systemd-networkd.service"], logfile)
    # SSH: key-only root login; one ed25519 host key generated now, so the lab can
    # write a known_hosts line for it (drp never auto-accepts host keys).
    _write(
        etc / "ssh" / "sshd_config.d" / "drplab.conf",
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "UseDNS no\n",
    )
    for old in (etc / "ssh").glob("ssh_host_*"):
        old.unlink()
    hostkey = etc / "ssh" / "ssh_host_ed25519_key"
    _run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            f"root@{cfg.hostname}",
            "-f",
            str(hostkey),
        ],
        logfile,
    )
    root_ssh = tree / "root" / ".ssh"
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    _write(root_ssh / "authorized_keys", pubkey.strip() + "\n", 0o600)
    # The serial console is the lab's out-of-band path; it needs a root password.
    _run(["chroot", str(tree), "chpasswd"], logfile, input_text=f"root:{cfg.root_password}\n")
    _write(etc / "machine-id", "")
    _slim_tree(tree, logfile)
    stub = tree / "usr" / "local" / "sbin" / "drplab-init"
    _write(stub, (GUEST_DIR / "drplab-init").read_text(encoding="utf-8"), 0o755)
    fields = hostkey.with_suffix(".pub").read_text(encoding="utf-8").split()
    return f"{fields[0]} {fields[1]}"


#: Kernel module trees a virtio guest never loads (~200 MB of the ~280 MB of drivers).
UNUSED_MODULE_DIRS: tuple[str, ...] = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/iio",
    "drivers/staging",
    "drivers/net/wireless",
    "drivers/net/ethernet",
    "drivers/bluetooth",
    "drivers/usb",
    "drivers/hid",
    "drivers/input/touchscreen",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
)


def _slim_tree(tree: Path, logfile: Path) -> None:
    """Drop documentation and unused kernel modules: a smaller root copies faster."""
    _write(
        tree / "etc" / "dpkg" / "dpkg.cfg.d" / "drplab-nodoc",
        "path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\n"
        "path-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\n"
        "path-exclude=/usr/share/locale/*\npath-include=/usr/share/locale/locale.alias\n"
        # the same driver trees as below, for kernels installed later in the guest
        + "".join(
            f"path-exclude=/usr/lib/modules/*/kernel/{sub}/*\n" for sub in UNUSED_MODULE_DIRS
        ),
    )
    for sub in ("man", "info", "locale"):
        target = tree / "usr" / "share" / sub
        if target.is_dir():
            for child in target.iterdir():
                if child.name != "locale.alias":
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
    for doc in (tree / "usr" / "share" / "doc").glob("*"):
        if doc.is_dir():
            for child in doc.iterdir():
                if child.name != "copyright":
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
    for moddir in sorted((tree / "usr" / "lib" / "modules").glob("*")):
        for sub in UNUSED_MODULE_DIRS:
            target = moddir / "kernel" / sub
            if target.is_dir():
                shutil.rmtree(target)
        _run(["chroot", str(tree), "depmod", moddir.name], logfile)


def _keep_new_kernel_deb(tree: Path, debs: Path, logfile: Path) -> None:
    """Purge the newer kernel debootstrap installed; keep its .deb in the guest.

    The lab then breaks the guest as the night did: ``dpkg --unpack`` of that package,
    interrupted before it is configured (``drplab.breaks.interrupt_kernel_upgrade``).
    """
    package = f"linux-image-{NEW_KERNEL}"
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise BuildError(f"no {package} package in {debs}")
    spare = tree / SPARE_DEB_DIR.lstrip("/")
    spare.mkdir(parents=True, exist_ok=True)
    _slim_deb(found[-1], spare / found[-1].name, logfile)
    _run(["chroot", str(tree), "dpkg", "--purge", package], logfile)
    # depmod's files (written by _slim_tree) are not the package's: dpkg leaves them
    leftover = tree / "usr" / "lib" / "modules" / NEW_KERNEL
    if leftover.is_dir():
        shutil.rmtree(leftover)


def _slim_deb(source: Path, dest: Path, logfile: Path) -> None:
    """Repack a kernel package without the module trees the guest excludes, gzip -1, not xz.

    The guest's dpkg skips those trees anyway (``path-exclude``, see ``_slim_tree``), but
    still decompresses them: ``dpkg --unpack`` of the xz package took 1-4.5 minutes under
    TCG. Slimmed: 400 -> 182 MB unpacked; gzip decompresses several times faster than xz.
    The package stays the real one otherwise (same control files and scripts); its
    md5sums lose the removed files' lines.
    """
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        tree = Path(tmp) / "pkg"
        _run(["dpkg-deb", "-R", str(source), str(tree)], logfile)
        removed: list[str] = []
        for moddir in (tree / "lib" / "modules").glob("*"):
            for sub in UNUSED_MODULE_DIRS:
                target = moddir / "kernel" / sub
                if target.is_dir():
                    shutil.rmtree(target)
                    removed.append(str(target.relative_to(tree)) + "/")
        md5sums = tree / "DEBIAN" / "md5sums"
        if md5sums.exists() and removed:
            lines = md5sums.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [ln for ln in lines if not ln.split("  ", 1)[-1].startswith(tuple(removed))]
            md5sums.write_text("".join(kept), encoding="utf-8")
        _run(["dpkg-deb", "-Zgzip", "-z1", "-b", str(tree), str(dest)], logfile)


def _build_rootfs(cfg: BuildConfig, pubkey: str, root: Path) -> _Rootfs:
    key = _rootfs_key(cfg, pubkey)
    final = root / "rootfs" / key[:16]
    if (final / "meta.json").exists():
        cached: dict[str, Any] = json.loads((final / "meta.json").read_text(encoding="utf-8"))
        return _Rootfs(path=final, key=key, **cached)
    started = time.monotonic()
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{key[:16]}.", dir=final.parent))
    logfile = work / "build.log"
    tree = work / "tree"
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    try:
        log.info(
            "debootstrap %s (minbase, %d packages) into %s", cfg.suite, len(cfg.packages), tree
        )
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(cfg.packages)}",
                f"--cache-dir={debs}",
                cfg.suite,
                str(tree),
                debian_mirror(),
            ],
            logfile,
        )
        md_uuid = ":".join(uuid.uuid4().hex[i : i + 8] for i in range(0, 32, 8))
        fs_uuid = str(uuid.uuid4())
        log.info("configuring root tree")
        host_key = _configure_tree(tree, cfg, pubkey, md_uuid, fs_uuid, logfile)
        log.info("building initramfs in the chroot")
        with _chroot_mounts(tree):
            _keep_new_kernel_deb(tree, debs, logfile)
            _run(["chroot", str(tree), "update-initramfs", "-u", "-k", "all"], logfile)
            _run(["chroot", str(tree), "apt-get", "clean"], logfile)
        kernel = GOOD_KERNEL
        if not (tree / "boot" / f"vmlinuz-{kernel}").exists():
            raise BuildError(f"no kernel {kernel} in the root tree")
        shutil.copy2(tree / "boot" / f"vmlinuz-{kernel}", work / "vmlinuz")
        shutil.copy2(tree / "boot" / f"initrd.img-{kernel}", work / "initrd.img")
        log.info("packing root.img (mkfs.ext4 -d)")
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "root",
                "-U",
                fs_uuid,
                "-d",
                str(tree),
                str(work / "root.img"),
                f"{cfg.rootfs_size_mib}M",
            ],
            logfile,
        )
        _rmtree(tree)
        seconds = round(time.monotonic() - started, 1)
        meta: dict[str, Any] = {
            "host_key": host_key,
            "md_uuid": md_uuid,
            "fs_uuid": fs_uuid,
            "kernel": kernel,
            "seconds": seconds,
        }
        _write(work / "meta.json", json.dumps(meta, indent=2))
        work.rename(final)
    except BaseException:
        with contextlib.suppress(BuildError):
            _rmtree(work)
        raise
    log.info("root file system ready in %.0fs", seconds)
    return _Rootfs(path=final, key=key, **meta)


# --------------------------------------------------------------------------- stage 2


def _provision_script(cfg: BuildConfig, rootfs: _Rootfs) -> str:
    header = (
        f'DISK_SERIALS="{" ".join(cfg.disk_serials)}"\n'
        f'SRC_SERIAL="{SRC_SERIAL}"\n'
        f'MD_UUID="{rootfs.md_uuid}"\n'
        f'FS_UUID="{rootfs.fs_uuid}"\n'
        f'MD_NAME="{MD_NAME}"\n'
    )
    return header + (GUEST_DIR / "provision.sh").read_text(encoding="utf-8")


def _provision(cfg: BuildConfig, rootfs: _Rootfs, work: Path, script: str) -> None:
    logfile = work / "build.log"
    script_path = work / "provision.sh"
    _write(script_path, script)
    for name in cfg.disk_names:
        _run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                str(work / f"{name}.qcow2"),
                f"{cfg.disk_size_mib}M",
            ],
            logfile,
        )
    console = work / "provision-console.log"
    argv = [
        qemu_binary(),
        "-machine",
        "pc",
        *accel_args(),
        "-m",
        str(cfg.provision_memory_mib),
        "-smp",
        "1",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{console}",
        "-kernel",
        str(rootfs.path / "vmlinuz"),
        "-initrd",
        str(rootfs.path / "initrd.img"),
        "-append",
        f"root=UUID={rootfs.fs_uuid} ro console=ttyS0,115200n8 net.ifnames=0 panic=1 "
        "init=/usr/local/sbin/drplab-init",
        "-fw_cfg",
        f"name=opt/drplab/provision,file={script_path}",
        "-blockdev",
        f"driver=raw,node-name=src,read-only=on,file.driver=file,"
        f"file.filename={rootfs.image},file.locking=off",
        "-device",
        f"virtio-blk-pci,drive=src,serial={SRC_SERIAL}",
    ]
    for name, serial in zip(cfg.disk_names, cfg.disk_serials, strict=True):
        argv += [
            "-blockdev",
            f"driver=qcow2,node-name={name},file.driver=file,file.filename={work / name}.qcow2",
            "-device",
            f"virtio-blk-pci,drive={name},serial={serial}",
        ]
    log.info("provisioning boot: RAID-1 + GRUB on %s", ", ".join(cfg.disk_names))
    with logfile.open("a", encoding="utf-8") as out:
        out.write(f"\n$ {' '.join(argv)}\n")
        out.flush()
        try:
            subprocess.run(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=cfg.provision_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(
                f"provisioning boot timed out after {cfg.provision_timeout:.0f}s:\n{_tail(console)}"
            ) from exc
    if "DRPLAB-PROVISION-OK" not in console.read_text(encoding="utf-8", errors="replace"):
        raise BuildError(f"provisioning failed; console {console}:\n{_tail(console)}")


def image_key(cfg: BuildConfig, rootfs_key: str, script: str) -> str:
    """Cache key of the disk images."""
    return _sha256(
        "image",
        IMAGE_VERSION,
        rootfs_key,
        script,
        str(cfg.disk_size_mib),
        " ".join(cfg.disk_names),
        " ".join(cfg.disk_serials),
    )


def _cached_image(cfg: BuildConfig, pubkey: str, root: Path) -> LabImage | None:
    """The published image for ``cfg`` if both stages are cached, else None (no lock)."""
    if not (root / "rootfs" / _rootfs_key(cfg, pubkey)[:16] / "meta.json").exists():
        return None
    rootfs = _build_rootfs(cfg, pubkey, root)  # cached: reads its meta.json only
    final = root / "images" / image_key(cfg, rootfs.key, _provision_script(cfg, rootfs))[:16]
    return LabImage.load(final) if (final / "meta.json").exists() else None


def build_image(cfg: BuildConfig | None = None, *, root: Path | None = None) -> LabImage:
    """Return the cached lab image for ``cfg``, building what is missing.

    Safe to call from several processes at once: builds are serialised by a
    lock file and published with an atomic rename, so a cached image is returned
    without the lock (a build of another key does not hold it up).
    """
    cfg = cfg or BuildConfig()
    root = root or cache_dir()
    ssh_key = ensure_ssh_key(root)
    pubkey = ssh_key.with_suffix(".pub").read_text(encoding="utf-8")
    cached = _cached_image(cfg, pubkey, root)
    if cached is not None:
        return cached
    with locked(root / "build.lock"):
        rootfs = _build_rootfs(cfg, pubkey, root)
        script = _provision_script(cfg, rootfs)
        key = image_key(cfg, rootfs.key, script)
        final = root / "images" / key[:16]
        if (final / "meta.json").exists():
            return LabImage.load(final)
        started = time.monotonic()
        final.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f"{key[:16]}.", dir=final.parent))
        try:
            _provision(cfg, rootfs, work, script)
            for name in cfg.disk_names:
                (work / f"{name}.qcow2").chmod(0o444)
            image = LabImage(
                path=final,
                key=key,
                disk_names=cfg.disk_names,
                disk_serials=cfg.disk_serials,
                ssh_key=ssh_key,
                host_key=rootfs.host_key,
                md_uuid=rootfs.md_uuid,
                fs_uuid=rootfs.fs_uuid,
                kernel=rootfs.kernel,
                hostname=cfg.hostname,
                root_password=cfg.root_password,
                build_seconds={
                    "rootfs": rootfs.seconds,
                    "provision": round(time.monotonic() - started, 1),
                },
            )
            _write(work / "meta.json", image.to_json())
            work.rename(final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    log.info("image %s ready in %.0fs", final, image.build_seconds["provision"])
    return image
