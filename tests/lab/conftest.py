"""Shared fixtures of the lab tier (also for runbook rehearsals: disk-replace, raid-rebuild, ...).

Fixtures:

``lab_image`` (session)
    the cached guest image (built on first use: ~5 min on 2 cores; then ~0 s).
``lab_guest`` (function)
    a fresh guest on qcow2 overlays, booted through GRUB, SSH ready; stopped
    (QEMU killed, overlays removed) after the test, even on failure. On failure
    the tail of its serial console is added to the report.
``lab_inventory`` (function)
    a drp inventory file (``tmp_path/inventory.yaml``) with ``lab_guest`` as host ``lab1``.
``module_guest`` / ``module_inventory`` (module)
    one guest (and its inventory) shared by the tests of a module, for rehearsals
    whose tests can run one after the other on the same machine.
``write_lab_inventory`` (function)
    ``write_lab_inventory(guest, path=None, host=None) -> Path`` for tests that
    start guests of their own or want another host name.

pytest-timeout (``timeout = 300`` in pyproject) counts fixture setup: the first
test of a session may build the image (~3 min) and every guest boots in ~45 s
(minutes on a loaded machine), so lab test modules set their own limit::

    pytestmark = [pytest.mark.lab, pytest.mark.timeout(1800)]

Without QEMU/debootstrap (or not root) lab tests skip, unless
``DRP_LAB_REQUIRED=1`` (CI) turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from drplab import Guest, LabImage, build_image

WriteInventory = Callable[..., Path]

_TOOLS = ("qemu-system-x86_64", "qemu-img", "debootstrap", "mkfs.ext4", "ssh", "ssh-keygen")


def _missing() -> str | None:
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        hint = "apt-get install qemu-system-x86 qemu-utils debootstrap"
        return f"lab needs {', '.join(missing)} ({hint})"
    if os.geteuid() != 0:
        return "lab image build needs root (debootstrap, chroot)"
    return None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"lab_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lab_image() -> LabImage:
    """The cached lab image (built once per cache key)."""
    reason = _missing()
    if reason:
        if os.environ.get("DRP_LAB_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return build_image()


@pytest.fixture
def lab_guest(lab_image: LabImage, request: pytest.FixtureRequest) -> Iterator[Guest]:
    """A fresh guest, SSH ready; torn down after the test."""
    guest = Guest(lab_image, name="lab1")
    try:
        guest.start()
        yield guest
    finally:
        report = getattr(request.node, "lab_report_call", None)
        if report is not None and report.failed and guest.workdir is not None:
            try:
                tail = guest.console_log.read_text(errors="replace")[-4000:]
            except OSError:
                tail = ""
            report.sections.append(("lab console (tail)", tail))
        guest.stop()


@pytest.fixture(scope="module")
def module_guest(lab_image: LabImage) -> Iterator[Guest]:
    """One guest shared by the tests of a module (each boot costs ~1 min under TCG)."""
    guest = Guest(lab_image, name="lab1")
    try:
        guest.start()
        yield guest
    finally:
        guest.stop()


@pytest.fixture(scope="module")
def module_inventory(module_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory file with ``module_guest`` as host ``lab1`` (management port as fallback)."""
    return module_guest.write_inventory(tmp_path_factory.mktemp("inv") / "inventory.yaml")


@pytest.fixture
def write_lab_inventory(tmp_path: Path) -> WriteInventory:
    """Factory: ``write_lab_inventory(guest, path=None, host=None) -> Path``."""

    def write(guest: Guest, path: Path | None = None, host: str | None = None) -> Path:
        return guest.write_inventory(path or tmp_path / "inventory.yaml", host=host)

    return write


@pytest.fixture
def lab_inventory(lab_guest: Guest, write_lab_inventory: WriteInventory) -> Path:
    """An inventory file with ``lab_guest`` as host ``lab1``."""
    return write_lab_inventory(lab_guest)
