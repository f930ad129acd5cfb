"""Signing a journal's chain head with the operator's SSH key, and checking it, with OpenSSH.

drp never implements the signature format: it runs ``ssh-keygen -Y sign`` (namespace
:data:`NAMESPACE`), ``-Y find-principals`` and ``-Y verify``, so that anyone can check
a run with OpenSSH alone and an ``allowed_signers`` file, as git does for signed
commits. Each signature covers a small text file, the *head statement*::

    <run dir>/signatures/000041.head       drp-journal-head 1 / run / seq / hash / signed
    <run dir>/signatures/000041.head.sig   -----BEGIN SSH SIGNATURE----- …

By hand: ``ssh-keygen -Y verify -f allowed_signers -I ana@corp -n drp-journal
-s 000041.head.sig < 000041.head``, then compare the ``hash`` line with the
``hash`` of line 41 of ``events.jsonl``.

The key (:func:`resolve_signer`) is ``--sign-key`` / ``DRP_SIGN_KEY``: a private key
file, a public key file whose private half is in ssh-agent, ``agent`` (the agent's
first key) or ``none``. Unset (``auto``): the agent's first key when ``SSH_AUTH_SOCK``
is set and the agent holds one, else no signature, and the reason is journaled.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from drp.errors import InputError
from drp.journal.index import Head
from drp.journal.paths import PRIVATE_DIR
from drp.journal.record import format_ts

NAMESPACE = "drp-journal"
SIGNATURES = "signatures"
ENV_SIGN_KEY = "DRP_SIGN_KEY"
MAGIC = "drp-journal-head 1"
_TIMEOUT = 60.0
_FINGERPRINT = re.compile(r"\b(SHA256:[A-Za-z0-9+/=]+)")


@dataclass(frozen=True)
class Signer:
    """How this session signs: a key file (private, or public with the agent), or nothing."""

    key_file: str | None  # a private key file, or a public one whose half is in the agent
    fingerprint: str | None
    mode: str  # "file", "agent" or "none"
    reason: str = ""  # why there is no key (mode "none")
    agent_key: str = ""  # the agent's public key line (mode "agent" without a key file)

    def facts(self) -> dict[str, object]:
        """What the journal records about signing in run.started / run.resumed."""
        return {"mode": self.mode, "key_fingerprint": self.fingerprint, "reason": self.reason}


def _keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise InputError("ssh-keygen (OpenSSH) is not installed: it signs and checks journals")
    return found


def _run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=_TIMEOUT, check=False)


def fingerprint(key_file: str) -> str | None:
    """``SHA256:…`` of a key file (private or public), as ``ssh-keygen -l`` prints it."""
    done = _run([_keygen(), "-l", "-f", key_file])
    match = _FINGERPRINT.search(done.stdout.decode("utf-8", "replace"))
    return match.group(1) if match and done.returncode == 0 else None


def _agent_key() -> str | None:
    """The first public key ssh-agent holds (one line), or None."""
    if not os.environ.get("SSH_AUTH_SOCK") or shutil.which("ssh-add") is None:
        return None
    done = _run(["ssh-add", "-L"])
    lines = done.stdout.decode("utf-8", "replace").splitlines() if done.returncode == 0 else []
    return next((line for line in lines if line.strip()), None)


def _agent_signer(explicit: bool) -> Signer:
    key = _agent_key()
    if key is None:
        reason = (
            "SSH_AUTH_SOCK is not set"
            if not os.environ.get("SSH_AUTH_SOCK")
            else "ssh-agent holds no key"
        )
        if explicit:
            raise InputError(f"--sign-key agent: {reason}")
        return Signer(None, None, "none", f"no signing key: {reason} and no --sign-key given")
    with tempfile.TemporaryDirectory() as tmp:
        pub = Path(tmp) / "agent.pub"
        pub.write_text(key + "\n", encoding="utf-8")
        return Signer(None, fingerprint(str(pub)), "agent", agent_key=key)


def resolve_signer(spec: str | None) -> Signer:
    """The signer for ``--sign-key``/``DRP_SIGN_KEY`` ``spec`` (None or ``auto``: see above).

    An explicit key that cannot be used is an :class:`InputError` before anything runs.
    """
    value = (spec if spec is not None else os.environ.get(ENV_SIGN_KEY, "")).strip() or "auto"
    if value == "none":
        return Signer(None, None, "none", "signing turned off (--sign-key none)")
    if value in ("auto", "agent"):
        return _agent_signer(explicit=value == "agent")
    path = Path(value).expanduser()
    if not path.is_file():
        raise InputError(f"--sign-key: no key file {path}")
    found = fingerprint(str(path))
    if found is None:
        raise InputError(f"--sign-key: {path} is not an SSH key ssh-keygen can read")
    public = path.read_text(encoding="utf-8", errors="replace").startswith(("ssh-", "ecdsa-"))
    if public and not os.environ.get("SSH_AUTH_SOCK"):
        raise InputError(
            f"--sign-key {path} is a public key: its private half must be in ssh-agent"
        )
    return Signer(str(path), found, "agent" if public else "file")


def statement(head: Head, when: datetime | None = None) -> str:
    """The text a signature covers."""
    stamp = format_ts(when or datetime.now(UTC))
    return f"{MAGIC}\nrun {head.run}\nseq {head.seq}\nhash {head.hash}\nsigned {stamp}\n"


def parse_statement(text: str) -> Head | None:
    lines = text.splitlines()
    if len(lines) < 4 or lines[0] != MAGIC:
        return None
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    try:
        return Head(fields["run"], int(fields["seq"]), fields["hash"])
    except (KeyError, ValueError):
        return None


def sign_head(run_directory: Path, head: Head, signer: Signer) -> Path:
    """Write the head statement and sign it; OSError/RuntimeError say why it failed."""
    if signer.key_file is None and not signer.agent_key:
        raise RuntimeError(signer.reason or "no signing key")
    folder = run_directory / SIGNATURES
    folder.mkdir(mode=PRIVATE_DIR, exist_ok=True)
    path = folder / f"{head.seq:06d}.head"
    sig = path.with_name(path.name + ".sig")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:  # sign aside, then rename both
        draft = Path(tmp) / path.name
        draft.write_text(statement(head), encoding="utf-8")
        sign_file(draft, signer, NAMESPACE)
        os.replace(draft.with_name(draft.name + ".sig"), sig)
        os.replace(draft, path)
    return path


def sign_file(path: Path, signer: Signer, namespace: str) -> Path:
    """``ssh-keygen -Y sign`` ``path`` into ``path.sig``; RuntimeError says why it failed."""
    if signer.key_file is None and not signer.agent_key:
        raise RuntimeError(signer.reason or "no signing key")
    with tempfile.TemporaryDirectory() as tmp:
        key = signer.key_file
        if key is None:  # ssh-keygen -Y sign -f PUBLIC asks the agent for the private half
            key = str(Path(tmp) / "agent.pub")
            Path(key).write_text(signer.agent_key + "\n", encoding="utf-8")
        done = _run([_keygen(), "-q", "-Y", "sign", "-f", key, "-n", namespace, str(path)])
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = said[-1] if said else f"exit {done.returncode}"
        raise RuntimeError(f"ssh-keygen -Y sign failed: {why}")
    return path.with_name(path.name + ".sig")


def find_principals(sig: Path, allowed_signers: Path) -> list[str]:
    """The principals of ``allowed_signers`` whose key made the signature ``sig``."""
    found = _run([_keygen(), "-Y", "find-principals", "-s", str(sig), "-f", str(allowed_signers)])
    return found.stdout.decode("utf-8", "replace").split() if found.returncode == 0 else []


def verify_text(
    text: bytes, sig: Path, allowed_signers: Path, principal: str, namespace: str
) -> str | None:
    """The fingerprint of the key when ``sig`` is ``principal``'s signature of ``text``."""
    args = [_keygen(), "-Y", "verify", "-f", str(allowed_signers), "-I", principal]
    done = _run([*args, "-n", namespace, "-s", str(sig)], stdin=text)
    if done.returncode != 0:
        return None
    match = _FINGERPRINT.search(done.stdout.decode("utf-8", "replace"))
    return match.group(1) if match else "?"


@dataclass(frozen=True)
class SignatureCheck:
    """One signature of a run, checked (or not) against an allowed_signers file."""

    path: Path
    head: Head | None
    principal: str | None = None
    valid: bool | None = None  # None: not checked (no allowed_signers file given)
    problem: str = ""


def signature_files(run_directory: Path) -> list[Path]:
    folder = run_directory / SIGNATURES
    return sorted(folder.glob("*.head")) if folder.is_dir() else []


def check_signature(  # noqa: PLR0911 - one return per way a signature can fail
    path: Path, allowed_signers: Path | None
) -> SignatureCheck:
    """Parse one head statement; with ``allowed_signers``, find its signer and verify."""
    try:
        text = path.read_bytes()
    except OSError as err:
        return SignatureCheck(path, None, problem=f"cannot read: {err.strerror}")
    head = parse_statement(text.decode("utf-8", "replace"))
    if head is None:
        return SignatureCheck(path, None, valid=False, problem="not a drp head statement")
    if allowed_signers is None:
        return SignatureCheck(path, head)
    sig = str(path) + ".sig"
    if not Path(sig).is_file():
        return SignatureCheck(path, head, valid=False, problem="its .sig file is missing")
    found = _run([_keygen(), "-Y", "find-principals", "-s", sig, "-f", str(allowed_signers)])
    principals = found.stdout.decode("utf-8", "replace").split()
    if found.returncode != 0 or not principals:
        return SignatureCheck(
            path, head, valid=False, problem="not signed by any key in the allowed_signers file"
        )
    principal = principals[0]
    args = [_keygen(), "-Y", "verify", "-f", str(allowed_signers), "-I", principal]
    done = _run([*args, "-n", NAMESPACE, "-s", sig], stdin=text)
    if done.returncode != 0:
        return SignatureCheck(
            path, head, principal, False, "the signature does not verify (statement altered)"
        )
    return SignatureCheck(path, head, principal, True)
