"""Against a real sshd: a placeholder in the author's quotes is refused before any host is
touched; written bare, the same hostile value arrives as one literal word (issue 16, class 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sshd import SshServer

from integration.support import Lab, combined, new_lab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path: Path, sshd: SshServer) -> Lab:
    return new_lab(tmp_path, sshd)


def _book(lab: Lab, use: str) -> Path:
    """A runbook that captures the param ``dev`` as ``seen``, then runs ``use``."""
    body = "\n".join(" " * 6 + line.strip() for line in use.splitlines())
    text = (
        "name: quoting\ntargets: h1\nparams:\n  dev: {required: true}\nsteps:\n"
        "  - id: look\n    run: printf '%s\\n' {{ params.dev }}\n    capture: seen\n"
        f"  - id: use\n    run: |\n{body}\n"
    )
    return lab.runbook(text)


@pytest.mark.parametrize(
    ("command", "value"),
    [
        ('echo "replacing {{ params.dev }} now"', "$(touch {m})"),
        ("echo 'replacing {{ params.dev }} now'", "'; touch {m}; '"),
        ('echo "$(echo "{{ captures.seen }}")"', "$(touch {m})"),
        ("cat <<EOF\n  {{ params.dev }}\n  EOF", "$(touch {m})"),
    ],
)
def test_a_placeholder_in_quotes_is_refused_before_any_host(
    lab: Lab, command: str, value: str
) -> None:
    marker = lab.root / "pwned"
    result = lab.run(_book(lab, command), "-p", f"dev={value.format(m=marker)}")
    assert result.returncode == 2, combined(result)
    assert "steps[1].run: a {{ }} placeholder inside" in result.stderr
    assert not marker.exists()
    assert lab.run_ids() == []  # refused before a journal, a connection or a lock


def test_bare_placeholders_carry_hostile_values_as_one_word(lab: Lab) -> None:
    marker = lab.root / "pwned"
    out = lab.root / "out"
    use = f"printf '%s|' {{{{ captures.seen }}}} \"$(printf %s {{{{ params.dev }}}})\" > {out}"
    hostile = f"$(touch {marker}) '; touch {marker}; ' \"`touch {marker}`\""
    result = lab.run(_book(lab, use), "-p", f"dev={hostile}")
    assert result.returncode == 0, combined(result)
    assert not marker.exists()
    assert out.read_text() == f"{hostile}|{hostile}|"
