"""dns-failover and dns-failback, proved against a real BIND 9 primary and secondary.

Each test drives the installed ``drp`` CLI as a subprocess over the real sshd
fixture against this machine, where ``named`` serves ``example.test`` from a
zone file in the test's directory, and checks with ``dig`` what the name
servers answer afterwards: the failover records with a higher serial, no change
on a second run, the original records back with a still higher serial, and
nothing touched (or everything rolled back) when something is wrong.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import RUNBOOKS, VARIANT, DnsLab

from drp.runbook.loader import load_runbook

pytestmark = [pytest.mark.dns, pytest.mark.integration]

FAILOVER = 'www A 198.51.100.10; mail A 198.51.100.25; status TXT "degraded: backup site"'
ORIGINAL = "www A 192.0.2.10; mail A 192.0.2.25; @ MX 10 mail.example.test."
START_SERIAL = 2024010101


def _ok(result: subprocess.CompletedProcess[str], code: int = 0) -> None:
    assert result.returncode == code, (
        f"exit {result.returncode}, want {code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )


def _answers_failover(lab: DnsLab, serial: int) -> None:
    for server in lab.bind.servers:
        assert server.wait_serial(lambda s: s == serial) == serial, server.spec
        assert server.answers("www") == ["198.51.100.10"], server.spec
        assert server.answers("mail") == ["198.51.100.25"], server.spec
        assert server.answers("status", "TXT") == ['"degraded: backup site"'], server.spec


def _answers_original(lab: DnsLab, serial: int) -> None:
    for server in lab.bind.servers:
        assert server.wait_serial(lambda s: s == serial) == serial, server.spec
        assert server.answers("www") == ["192.0.2.10"], server.spec
        assert server.answers("mail") == ["192.0.2.25"], server.spec
        assert server.answers("status", "TXT") == [], server.spec


def _journal_ok(lab: DnsLab) -> None:
    result = lab.drp("log", "verify", "--all", "--state-dir", str(lab.state))
    _ok(result)


def _events(lab: DnsLab) -> list[dict]:  # type: ignore[type-arg]
    """Records of the latest run's journal."""
    runs = sorted(lab.state.glob("runs/*/events.jsonl"))  # not the witness index
    newest = max(runs, key=lambda p: p.stat().st_mtime)
    return [json.loads(line) for line in newest.read_text().splitlines() if line.strip()]


def _step_outcomes(lab: DnsLab) -> dict[str, str]:
    return {
        r["step"]: r.get("outcome")
        for r in _events(lab)
        if r.get("type") == "step.finished" and r.get("step")
    }


def test_failover_then_failback_round_trip(dns_lab: DnsLab) -> None:
    lab, zone = dns_lab, dns_lab.bind.zone_file
    backup = Path(f"{zone}.pre-failover")
    original_bytes = zone.read_bytes()
    _answers_original(lab, START_SERIAL)

    # failover: the variant answers everywhere, with a higher, date-based serial
    _ok(lab.run("dns-failover", FAILOVER))
    failover_serial = lab.bind.primary.serial()
    assert failover_serial is not None and failover_serial > START_SERIAL
    assert failover_serial == int(time.strftime("%Y%m%d00", time.gmtime()))
    _answers_failover(lab, failover_serial)
    assert backup.read_bytes() == original_bytes
    backup_stat = backup.stat()

    # a second failover is a no-op: same serial, backup untouched
    _ok(lab.run("dns-failover", FAILOVER))
    assert lab.bind.primary.serial() == failover_serial
    assert _step_outcomes(lab)["activate-variant"] == "skipped"
    skipped = [e for e in _events(lab) if e.get("step") == "activate-variant"]
    assert "already failed over" in skipped[-1]["message"], skipped[-1]
    assert backup.read_bytes() == original_bytes
    assert backup.stat().st_mtime_ns == backup_stat.st_mtime_ns
    _answers_failover(lab, failover_serial)

    # failback: the original records, with a still higher serial
    _ok(lab.run("dns-failback", ORIGINAL))
    failback_serial = lab.bind.primary.serial()
    assert failback_serial is not None and failback_serial > failover_serial
    _answers_original(lab, failback_serial)
    assert not backup.exists(), "the backup is retired after a verified failback"
    retired = list(zone.parent.glob("example.test.zone.pre-failover.done-*"))
    assert [p.read_bytes() for p in retired] == [original_bytes]

    # a second failback is a no-op too
    _ok(lab.run("dns-failback", ORIGINAL))
    assert lab.bind.primary.serial() == failback_serial
    assert _step_outcomes(lab)["restore-original"] == "skipped"
    skipped = [e for e in _events(lab) if e.get("step") == "restore-original"]
    assert "already failed back" in skipped[-1]["message"], skipped[-1]

    # and a new failover keeps a fresh backup (the restored zone), bumping again
    _ok(lab.run("dns-failover", FAILOVER))
    assert lab.bind.primary.serial() > failback_serial  # type: ignore[operator]
    assert f"{failback_serial} ; serial" in backup.read_text()
    _journal_ok(lab)


def test_broken_variant_stops_before_touching_the_live_zone(dns_lab: DnsLab) -> None:
    lab, zone = dns_lab, dns_lab.bind.zone_file
    lab.bind.variant_file.write_text(
        VARIANT.format(serial=START_SERIAL) + "broken  IN  A   not-an-address\n"
    )
    before = zone.read_bytes()

    result = lab.run("dns-failover", FAILOVER)

    _ok(result, 1)
    outcomes = _step_outcomes(lab)
    assert outcomes["variant-valid"] == "failed"
    assert "activate-variant" not in outcomes
    assert zone.read_bytes() == before
    assert not Path(f"{zone}.pre-failover").exists()
    _answers_original(lab, START_SERIAL)
    _journal_ok(lab)


def test_failed_verification_rolls_back_to_the_original(dns_lab: DnsLab) -> None:
    lab, zone = dns_lab, dns_lab.bind.zone_file

    # the variant does not have this value: verification can never pass
    result = lab.run("dns-failover", "www A 203.0.113.99")

    _ok(result, 1)
    events = _events(lab)
    attempts = [
        r
        for r in events
        if r.get("type") == "step.attempt" and r.get("step") == "verify-from-outside"
    ]
    assert len(attempts) > 1, "the verification is retried while the change propagates"
    rolled = [r["step"] for r in events if r.get("type") == "rollback.finished"]
    assert "activate-variant" in rolled
    assert all(r.get("outcome") == "ok" for r in events if r.get("type") == "rollback.finished")
    # the original answers again, with a serial above the failover one (secondaries follow)
    restored = lab.bind.primary.serial()
    assert restored is not None and restored > START_SERIAL
    _answers_original(lab, restored)
    assert "192.0.2.10" in zone.read_text()
    _journal_ok(lab)

    # the backup is still the original; a corrected failover then works
    _ok(lab.run("dns-failover", FAILOVER))
    _answers_failover(lab, lab.bind.primary.serial())  # type: ignore[arg-type]


def test_failover_when_the_serial_is_already_in_the_future(dns_lab: DnsLab) -> None:
    lab, zone = dns_lab, dns_lab.bind.zone_file
    zone.write_text(zone.read_text().replace(str(START_SERIAL), "2099123199"))
    subprocess.run([*lab.bind.rndc.split(), "reload", "example.test"], check=True, timeout=30)
    assert lab.bind.secondary.wait_serial(lambda s: s == 2099123199) == 2099123199

    _ok(lab.run("dns-failover", FAILOVER))

    _answers_failover(lab, 2099123200)


def test_both_runbooks_verify_with_the_same_shared_steps() -> None:
    failover = load_runbook(RUNBOOKS / "dns-failover.yaml")
    failback = load_runbook(RUNBOOKS / "dns-failback.yaml")
    for step_id in ("served-serial", "reload-zone", "live-serial", "verify-from-outside"):
        assert failover.step(step_id) == failback.step(step_id), step_id
    shared = {str(RUNBOOKS / "common" / "dns-reload-verify.yaml")}
    assert shared <= {str(Path(f).resolve()) for f in failover.files}
    assert shared <= {str(Path(f).resolve()) for f in failback.files}


def test_failed_failback_verification_puts_the_failover_zone_back(dns_lab: DnsLab) -> None:
    lab, zone = dns_lab, dns_lab.bind.zone_file
    _ok(lab.run("dns-failover", FAILOVER))
    failover_serial = lab.bind.primary.serial()
    assert failover_serial is not None

    result = lab.run("dns-failback", "www A 203.0.113.99")

    _ok(result, 1)
    rolled = [r["step"] for r in _events(lab) if r.get("type") == "rollback.finished"]
    assert "restore-original" in rolled
    back = lab.bind.primary.serial()
    assert back is not None and back > failover_serial + 1, "restored, then rolled back: 2 bumps"
    _answers_failover(lab, back)
    assert Path(f"{zone}.pre-failover").exists(), "the backup is kept for the next try"
    _journal_ok(lab)
