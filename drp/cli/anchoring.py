"""Who runs a session, as facts, and the anchors it leaves when it starts and ends.

Every session (``drp run``, ``drp resume``, ``drp log note``) journals, in its first
record, the OS user (from the process's uid, not ``$USER``), the machine's host name
and, when it signs, the key's fingerprint, beside the ``--operator`` label, which is
whatever the operator typed. It appends its chain head to the state directory's
witness index when it starts and when it ends, and at the end signs the head with
the operator's SSH key (see :mod:`drp.journal.signing`): a pause ends a session,
so every pause is signed.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import typer

from drp.errors import JournalError
from drp.journal.index import Head, append_head
from drp.journal.signing import ENV_SIGN_KEY, Signer, resolve_signer, sign_head
from drp.journal.writer import JournalWriter

SignKeyOption = typer.Option(
    None,
    "--sign-key",
    envvar=ENV_SIGN_KEY,
    help=(
        "SSH key that signs the journal's head at the end of the session: a key file, a "
        ".pub whose private half is in ssh-agent, 'agent' or 'none' (default: the agent's "
        f"first key when SSH_AUTH_SOCK is set, else unsigned; env {ENV_SIGN_KEY})."
    ),
    show_default=False,
)

AllowedSignersOption = typer.Option(
    None,
    "--allowed-signers",
    help="The team's OpenSSH allowed_signers file: who may approve a step with approvers: "
    "(else $DRP_ALLOWED_SIGNERS, else 'allowed_signers:' in ~/.config/drp/config.yaml).",
    show_default=False,
)


def os_user() -> str:
    """The login name of the process's real uid (``$USER`` can say anything)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid {os.getuid()}"


def identity(signer: Signer) -> dict[str, object]:
    """The facts about who runs this session (``--operator`` is only a label beside them)."""
    return {
        "os_user": os_user(),
        "uid": os.getuid(),
        "host": socket.gethostname(),
        "key_fingerprint": signer.fingerprint,
    }


def _warn(text: str) -> None:
    with contextlib.suppress(OSError):
        sys.stderr.write(f"warning: {text}\n")


@dataclass(frozen=True)
class Anchoring:
    """The anchors of one session: the state dir's index and the signing key."""

    state: Path
    signer: Signer

    @classmethod
    def resolve(cls, state: Path, sign_key: str | None) -> Anchoring:
        """Decide the signing key before anything runs (a bad explicit key is an input error)."""
        return cls(state, resolve_signer(sign_key))

    def facts(self) -> dict[str, object]:
        """What run.started / run.resumed / run.note records about this session."""
        return {"identity": identity(self.signer), "signing": self.signer.facts()}

    def _index(self, writer: JournalWriter, event: str) -> None:
        try:
            seq, digest = writer.head()
            append_head(self.state, Head(writer.run_id, seq, digest), event)
        except (OSError, JournalError) as err:
            _warn(f"cannot write the witness index in {self.state}: {err}")

    def started(self, writer: JournalWriter) -> None:
        """The session's first record is on disk: witness the run in the index."""
        self._index(writer, "session-start")

    def ended(self, writer: JournalWriter) -> None:
        """The session ended (finished, paused, stopped): index and sign its head."""
        try:
            seq, digest = writer.head()
        except JournalError:
            return  # the journal itself failed: the run says so
        if not seq:
            return
        self._index(writer, "session-end")
        if self.signer.mode == "none":
            return
        try:
            sign_head(writer.run_dir, Head(writer.run_id, seq, digest), self.signer)
        except (OSError, RuntimeError) as err:
            _warn(f"the journal's head (seq {seq}) was not signed: {err}")
