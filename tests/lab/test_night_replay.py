"""The September 2019 night (incident A), replayed end to end on one lab guest.

A boot disk of the RAID-1 pair dies while a kernel upgrade runs; the machine reboots
with the upgrade half done and without its primary network (the configuration names an
interface that no longer exists). The operator (this test, through the ``drp`` command
line only, every run tagged with one incident) works the night:

1. ``network-repair`` reaches the host through its management port (the inventory's
   ``fallback``) and installs the known-good configuration;
2. ``kernel-rollback`` finishes the interrupted upgrade and boots the known-good kernel;
3. ``disk-replace`` pauses for the swap; a "day" later a blank disk is slotted in and
   the run resumed with ``--approve``; drp is killed (SIGKILL) when a step picked at
   random starts, and the run resumed again to the end.

Then, without drp, the test's own checks: the other original disk is pulled and the
machine power-cycled. It must boot from the new disk alone, on the known-good kernel,
its primary network up, ``dpkg --audit`` empty, its array clean, the data unchanged.
Last, ``drp log report --incident`` tells the whole night: Markdown, JSON, and HTML
(kept as ``night-2019-09.html`` in the test's temp dir, rendered in headless Chromium).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
from pathlib import Path

import pytest
from browser.test_report_html import CHROMIUM, chromium, png_pixels
from drp_cli import RUNBOOKS, events, journal_has, outcomes, run_drp, runs, start_drp
from drplab import Guest
from drplab.breaks import GOOD_INTERFACES, night_of_september_2019
from drplab.build import GOOD_KERNEL, NEW_KERNEL
from drplab.probes import grub_core_embedded
from drplab.util import wait_until

from drp.report.html import COLORS

pytestmark = [pytest.mark.lab, pytest.mark.timeout(2700)]

INCIDENT = "2019-09-disk"
#: drp is killed when one of these disk-replace steps (after the swap) starts
KILL_CANDIDATES = ("new-disk", "copy-partitions", "add-members", "install-bootloader")


def md0(guest: Guest, *, mgmt: bool = False) -> str:
    """The md0 lines of /proc/mdstat."""
    text = guest.ssh("cat /proc/mdstat", check=True, mgmt=mgmt).stdout
    match = re.search(r"^md0 :.*\n.*\n", text, re.MULTILINE)
    assert match, text
    return match.group(0)


def primary_ok(guest: Guest) -> bool:
    """The test's own SSH login on the primary address."""
    return guest.ssh("true", timeout=20, connect_timeout=5).returncode == 0


def sha256(guest: Guest, path: str) -> str:
    return guest.ssh(f"sha256sum {path}", check=True, mgmt=True).stdout.split()[0]


def test_the_september_2019_night(lab_guest: Guest, lab_inventory: Path, tmp_path: Path) -> None:
    guest = lab_guest
    state = tmp_path / "state"
    inv = str(lab_inventory)
    tag = ("--incident", INCIDENT, "--operator", "night@ops")

    def drp(*args: str, timeout: float = 1800) -> str:
        result = run_drp(*args, state_dir=state, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    assert guest.ssh("uname -r", check=True).stdout.strip() == GOOD_KERNEL
    guest.ssh("head -c 16M /dev/urandom > /root/precious && sync", check=True)
    checksum = sha256(guest, "/root/precious")
    night_of_september_2019(guest)

    # The morning after: no primary network, a degraded mirror, a half-done upgrade.
    assert not primary_ok(guest)
    assert "[U_]" in md0(guest, mgmt=True)
    assert guest.ssh("dpkg --audit", check=True, mgmt=True).stdout.strip()

    # 1. network-repair, through the management port (the inventory's fallback).
    drp(
        "run", str(RUNBOOKS / "network-repair.yaml"), "-i", inv, "-H", "lab1", "--yes", *tag,
        "-p", "confirm_within=120s", "-p", "reboot_check=false",
    )  # fmt: skip
    (network_run,) = runs(state)
    connected = [e for e in events(state, network_run) if e["type"] == "host.connected"]
    assert connected and connected[0]["data"]["via_fallback"] is True, connected
    assert primary_ok(guest)
    assert guest.ssh("cat /etc/network/interfaces", check=True).stdout == GOOD_INTERFACES

    # 2. kernel-rollback: the upgrade finished, the known-good kernel booted and kept.
    drp("run", str(RUNBOOKS / "kernel-rollback.yaml"), "-i", inv, "-H", "lab1", "--yes", *tag)
    assert guest.ssh("uname -r", check=True).stdout.strip() == GOOD_KERNEL
    assert guest.ssh("dpkg --audit", check=True).stdout.strip() == ""

    # 3. disk-replace: paused at the swap.
    before = set(runs(state))
    paused = run_drp(
        "run", str(RUNBOOKS / "disk-replace.yaml"), "-i", inv, "-H", "lab1", "--yes", *tag,
        "-p", "failed=/dev/vdb", state_dir=state, timeout=1800,
    )  # fmt: skip
    assert paused.returncode == 5, paused.stdout + paused.stderr
    (disk_run,) = set(runs(state)) - before
    keep = [line for line in paused.stdout.splitlines() if "KEEP:" in line]
    assert keep and guest.image.disk_serials[0] in keep[0], paused.stdout

    # A "day" later: the blank disk arrives; the operator approves; drp dies mid-way.
    new = guest.insert_blank_disk("disk3", size="2304M", serial="DRPLAB-NEW0")
    wait_until(lambda: guest.ssh(f"test -b {new.by_id}").returncode == 0, 60, what="new disk")
    seed = int(os.environ.get("DRP_REPLAY_SEED") or random.SystemRandom().randrange(10**6))
    victim = random.Random(seed).choice(KILL_CANDIDATES)
    print(f"replay: drp is killed when {victim} starts (DRP_REPLAY_SEED={seed})")
    proc = start_drp(
        "resume", disk_run, "-i", inv, "--approve", "datacenter-swap", "--yes",
        "--operator", "night@ops", state_dir=state, log=tmp_path / "approve.log",
    )  # fmt: skip
    try:
        wait_until(
            lambda: journal_has(state, victim, "step.started") or proc.poll() is not None,
            900,
            interval=0.1,
            what=f"disk-replace's {victim} step to start",
        )
        assert proc.poll() is None, (tmp_path / "approve.log").read_text()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert outcomes(state, disk_run).get("datacenter-swap") == "ok"
    drp("resume", disk_run, "-i", inv, "--yes", "--retry-in-doubt", "--operator", "night@ops")
    ends = outcomes(state, disk_run)
    assert ends["verify-clean"] == "ok", ends
    new_dev = guest.ssh(f"readlink -f {new.by_id}", check=True).stdout.strip()
    assert grub_core_embedded(guest, new_dev)

    # 4. Without drp: the other original disk goes too, and the power.
    guest.pull_disk("disk0")
    guest.power_cycle(timeout=900)  # waits for SSH on the primary address
    assert "BOOT_IMAGE=" in guest.ssh("cat /proc/cmdline", check=True).stdout  # through GRUB
    disks = guest.ssh("lsblk -dnro SERIAL,TYPE | awk '$2 == \"disk\" {print $1}'", check=True)
    assert disks.stdout.split() == ["DRPLAB-NEW0"]
    assert guest.ssh("uname -r", check=True).stdout.strip() == GOOD_KERNEL
    assert primary_ok(guest)
    assert guest.ssh("cat /etc/network/interfaces", check=True).stdout == GOOD_INTERFACES
    assert guest.ssh("dpkg --audit", check=True).stdout.strip() == ""
    assert f"linux-image-{NEW_KERNEL}" in guest.ssh("apt-mark showhold", check=True).stdout
    detail = guest.ssh("mdadm --detail /dev/md0", check=True).stdout
    # one disk of two is left: clean (no resync, no faulty member), degraded by design
    assert re.search(r"^ *State : (clean|active)(, degraded)? *$", detail, re.MULTILINE), detail
    assert "Failed Devices : 0" in detail and "[2/1]" in md0(guest), detail
    assert sha256(guest, "/root/precious") == checksum

    # 5. One report for the night.
    report = run_drp(
        "log", "report", "--incident", INCIDENT, "--format", "json", state_dir=state, timeout=120
    )
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    assert [(r["runbook"]["name"], r["status"]) for r in data["runs"]] == [
        ("network-repair", "ok"),
        ("kernel-rollback", "ok"),
        ("disk-replace", "ok"),
    ], data["runs"]
    assert data["integrity"]["ok"] is True, data["integrity"]
    assert any(p["via"] == "fallback" and p["run"] == network_run for p in data["paths"])
    swap = [a for a in data["approvals"] if a["run"] == disk_run and a["step"] == "datacenter-swap"]
    assert swap and swap[0]["by"] == "night@ops", data["approvals"]
    sessions = [s for s in data["sessions"] if s["run"] == disk_run]
    assert len(sessions) == 3, sessions  # paused, killed, finished
    assert sessions[1]["outcome"] not in ("ok", "paused"), sessions
    md = run_drp("log", "report", "--incident", INCIDENT, state_dir=state, timeout=120).stdout
    assert f"# Incident {INCIDENT}: 3 runs" in md and "fallback" in md, md

    html = tmp_path / "night-2019-09.html"
    written = run_drp(
        "log", "report", "--incident", INCIDENT, "--format", "html", "-o", str(html),
        state_dir=state, timeout=120,
    )  # fmt: skip
    assert written.returncode == 0 and html.stat().st_size > 0, written.stderr
    print(f"replay: the incident's HTML report is kept at {html}")
    if not CHROMIUM.exists() and os.environ.get("DRP_BROWSER_REQUIRED") != "1":
        return
    png = tmp_path / "night-2019-09.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,4000", html.as_uri())
    width, height, colors = png_pixels(png.read_bytes())
    assert (width, height) == (1280, 4000) and len(colors) > 20
    assert bytes.fromhex(COLORS["ok"][1:]) in colors  # the timeline's bars were painted
    dom = chromium(tmp_path, "--dump-dom", html.as_uri()).stdout
    assert dom.count('<svg id="timeline"') == 1 and dom.count('class="run-row"') == 3
