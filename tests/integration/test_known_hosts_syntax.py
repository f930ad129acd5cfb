"""OpenSSH's known_hosts syntax against a real sshd (issue 16, class 6): markers, hashed
names, patterns and comments never end a run in an internal error; ``@revoked`` refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest
from sshd import SshServer

from drp.transport.hostkeys import host_matches, parse_known_hosts
from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration

OTHER_KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _hashed(name: str) -> str:
    salt = os.urandom(20)
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def _use(lab: Lab, text: str) -> Path:
    known = lab.root / "known_hosts_syntax"
    known.write_text(text)
    lab.write_inventory({"h1": {"address": "127.0.0.1", "known_hosts": str(known)}})
    return known


def _key(lab: Lab) -> str:
    return lab.sshd.host_public_key


@pytest.mark.parametrize(
    "entry",
    [
        "[127.0.0.1]:{port} {key}",
        "{hashed} {key}",
        "[127.0.0.?]:{port} {key}",
        "[127.*]:{port},!10.* {key}",
        "other.example,[127.0.0.1]:{port} {key} a comment",
    ],
)
def test_valid_known_hosts_with_every_kind_of_line_connects(lab: Lab, entry: str) -> None:
    name = f"[127.0.0.1]:{lab.sshd.port}"
    noise = (
        "# a comment\n\n"
        f"@cert-authority *.example.com ssh-ed25519 {OTHER_KEY}\n"
        f"@revoked other.example ssh-ed25519 {OTHER_KEY}\n"
        f"*.corp,!bad.corp ssh-ed25519 {OTHER_KEY}\n"
    )
    line = entry.format(port=lab.sshd.port, key=_key(lab), hashed=_hashed(name))
    _use(lab, noise + line + "\n")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)


def test_a_negated_pattern_rules_the_line_out(lab: Lab) -> None:
    _use(lab, f"[127.*]:{lab.sshd.port},![127.0.0.1]:{lab.sshd.port} {_key(lab)}\n")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 3, combined(result)
    assert "unknown host key" in combined(result)


def test_a_revoked_host_key_is_refused_with_exit_3(lab: Lab) -> None:
    known = _use(lab, f"@revoked * {_key(lab)}\n[127.0.0.1]:{lab.sshd.port} {_key(lab)}\n")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 3, combined(result)
    assert f"is REVOKED in {known}" in combined(result).replace("\n", "")
    assert "internal error" not in combined(result)


def test_a_revoked_key_that_is_not_listed_otherwise_is_refused_too(lab: Lab) -> None:
    _use(lab, f"@revoked [127.0.0.1]:{lab.sshd.port} {_key(lab)}\n")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 3, combined(result)
    assert "REVOKED" in combined(result) and "drp inventory trust" not in combined(result)


def test_a_cert_authority_line_is_skipped_and_said_when_the_key_is_unknown(lab: Lab) -> None:
    _use(lab, f"@cert-authority [127.0.0.1]:{lab.sshd.port} ssh-ed25519 {OTHER_KEY}\n")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 3, combined(result)
    shown = combined(result).replace("\n", "")
    assert "@cert-authority" in shown and "cannot verify host certificates" in shown


def test_ssh_keygen_hashed_file_is_read(lab: Lab) -> None:
    known = _use(lab, f"[127.0.0.1]:{lab.sshd.port} {_key(lab)}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    result = lab.run(lab.book("hello"))
    assert result.returncode == 0, combined(result)


def test_parser_and_matcher_follow_openssh() -> None:
    parsed = parse_known_hosts(
        f"# c\n@cert-authority * ssh-ed25519 {OTHER_KEY}\n@revoked * ssh-ed25519 {OTHER_KEY}\n"
        f"bad line\nh1,h2 ssh-ed25519 {OTHER_KEY}\n@weird h ssh-ed25519 {OTHER_KEY}\n"
        "h3 ssh-ed25519 not=base64!\n"
    )
    assert [k.patterns for k in parsed.keys] == [("h1", "h2")]
    assert parsed.revoked == {("ssh-ed25519", OTHER_KEY)}
    assert len(parsed.skipped) == 4
    assert host_matches(("DB1.example.com",), "db1.example.com")
    assert host_matches(("db?.example.*",), "db1.example.com")
    assert not host_matches(("db*", "!db2"), "db2")
    assert not host_matches(("h1",), "h10")
