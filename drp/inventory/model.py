"""Inventory models: the YAML shape (pydantic) and the resolved, frozen :class:`Host`.

```yaml
known_hosts: ~/.ssh/known_hosts     # default for every host
ssh_config: ~/.ssh/config           # the default; 'none' reads none (drp.inventory.sshconfig)
defaults: {user: root, port: 22}    # connection defaults
hosts:
  db1:
    address: 203.0.113.10
    fallback:                       # out-of-band paths, tried in order when the primary fails
      - 198.51.100.10               # through the host's jump, like the primary
      - {address: 192.0.2.10, jump: none}         # direct: the bastion may be down too
      - {address: 192.0.2.20, jump: ops@192.0.2.2} # through a bastion of its own
    jump: bastion                   # an inventory host, user@host:port, or none (direct)
    become: true                    # or {user: root, password_env: DRP_BECOME_PASSWORD}
    console:                        # out-of-band serial console (docs/runbooks.md)
      command: ipmitool -I lanplus -H bmc1 -U admin -E sol activate   # or socket: unix:/path
      user: root
      password_env: DB1_CONSOLE_PASSWORD
    vars: {bay: 2}
groups:
  databases: {hosts: [db1], children: [replicas], vars: {role: db}}
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from drp.fields import PositiveDuration

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")

#: What a ``jump`` says for "no jump host: connect directly" (so no host may be named so).
NO_JUMP = "none"


NAME_HINT = "use letters, digits, '.', '_' and '-', starting with a letter, digit or '_'"


def name_problem(name: object, kind: str) -> tuple[str, str] | None:
    """What is wrong with ``name`` as a ``kind`` ("host" or "group") name, and a hint; or None."""
    if not isinstance(name, str):
        return (
            f"invalid {kind} name {name!r}: YAML reads it as {type(name).__name__}, not text",
            'quote the name, e.g. "1": or "yes":',
        )
    if not _NAME.match(name):
        return f"invalid {kind} name {name!r}", NAME_HINT
    if kind == "host" and is_no_jump(name):
        return (
            f"invalid host name {name!r}: it is reserved",
            f"rename the host; 'jump: {NO_JUMP}' means no jump host",
        )
    return None


def is_no_jump(ref: str) -> bool:
    """``none`` (in any case, as DNS names are): no jump host, connect directly."""
    return ref.lower() == NO_JUMP


class BecomeSpec(BaseModel):
    """Privilege escalation with sudo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["sudo"] = "sudo"
    user: str = "root"
    password_env: str | None = Field(
        default=None, description="environment variable holding the sudo password"
    )


def _become_form(value: Any) -> str | None:
    if isinstance(value, dict | BecomeSpec):
        return "spec"
    return "flag" if isinstance(value, bool | str | int) else None


# true/false, or a mapping: a mapping's mistakes are told as such, not also "not a boolean"
BecomeField = Annotated[
    Annotated[bool, Tag("flag")] | Annotated[BecomeSpec, Tag("spec")],
    Discriminator(
        _become_form,
        custom_error_type="become",
        custom_error_message="become is true, false or {user: ..., password_env: ...}",
    ),
]


class ConnectionSpec(BaseModel):
    """Connection settings that can be given per host or as defaults."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    key: str | None = Field(default=None, description="path of the private key")
    known_hosts: str | None = None
    connect_timeout: PositiveDuration | None = None
    become: BecomeField | None = None
    reboot_command: str | None = None
    boot_id_command: str | None = None


class FallbackSpec(BaseModel):
    """A fallback address that says its own way in (the plain string form inherits the host's)."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(description="'addr' or 'addr:port'")
    jump: str | None = Field(
        default=None,
        description=(
            "jump host for this address: an inventory host, user@host:port, or 'none' "
            "(direct); default: the host's jump"
        ),
    )

    @property
    def direct(self) -> bool:
        """``jump: none`` (or an explicit null): no jump host for this address."""
        return "jump" in self.model_fields_set and (self.jump is None or is_no_jump(self.jump))


def _fallback_form(value: Any) -> str | None:
    if isinstance(value, str):
        return "address"
    return "spec" if isinstance(value, dict | FallbackSpec) else None


# A string is only an address, a mapping only a FallbackSpec: one error each, not both.
Fallback = Annotated[
    Annotated[str, Tag("address")] | Annotated[FallbackSpec, Tag("spec")],
    Discriminator(
        _fallback_form,
        custom_error_type="fallback",
        custom_error_message="a fallback is 'addr', 'addr:port' or {address: ..., jump: ...}",
    ),
]


#: Default prompt patterns of a console (regular expressions, matched at the end of output).
LOGIN_PROMPT = r"login:\s*$"
PASSWORD_PROMPT = r"[Pp]assword:\s*$"  # noqa: S105 - a prompt pattern, no password
SHELL_PROMPT = r"[#$%>]\s*(?:\x1b\[[0-9;?]*[A-Za-z]\s*)*$"  # colour codes may follow
_SOCKET = re.compile(r"^(unix:.+|tcp:.+:\d{1,5})$")


class ConsoleSpec(BaseModel):
    """A host's out-of-band serial console: a program or a socket, and how to log in."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(
        default=None,
        description="program whose stdin/stdout is the console, e.g. 'virsh console vm1'",
    )
    socket: str | None = Field(default=None, description="'unix:/path' or 'tcp:HOST:PORT'")
    user: str = Field(default="root", description="login user on the console")
    password_env: str | None = Field(
        default=None,
        description="environment variable holding the login password (else drp asks)",
    )
    login_prompt: str = LOGIN_PROMPT
    password_prompt: str = PASSWORD_PROMPT
    shell_prompt: str = SHELL_PROMPT
    timeout: PositiveDuration = Field(default=30.0, description="how long logging in may take")

    @model_validator(mode="before")
    @classmethod
    def _no_password(cls, value: Any) -> Any:
        if isinstance(value, dict) and "password" in value:
            raise ValueError(
                "a console password never goes in the inventory: "
                "name an environment variable with password_env (or let drp ask)"
            )
        return value

    @model_validator(mode="after")
    def _one_way_in(self) -> ConsoleSpec:
        if (self.command is None) == (self.socket is None):
            raise ValueError("a console has either command: or socket:, not both or neither")
        if self.socket is not None and not _SOCKET.match(self.socket):
            raise ValueError(f"socket {self.socket!r} is not 'unix:/path' or 'tcp:HOST:PORT'")
        for pattern in (self.login_prompt, self.password_prompt, self.shell_prompt):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"prompt pattern {pattern!r}: {exc}") from None
        return self


class HostSpec(ConnectionSpec):
    """One host as written in the inventory."""

    address: str | None = Field(default=None, description="defaults to the host's name")
    fallback: list[Fallback] = Field(
        default_factory=list,
        description=(
            "out-of-band addresses, tried in order: 'addr' or 'addr:port' (through the "
            "host's jump), or {address, jump} with a jump of its own or 'none' (direct)"
        ),
    )
    jump: str | None = Field(
        default=None,
        description="bastion: an inventory host, user@host:port, or 'none' (direct, the default)",
    )
    console: ConsoleSpec | None = Field(
        default=None, description="out-of-band serial console, used when no SSH path answers"
    )
    vars: dict[str, Any] = Field(default_factory=dict)


class GroupSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hosts: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)
    vars: dict[str, Any] = Field(default_factory=dict)


class InventoryFile(BaseModel):
    """The whole inventory YAML document."""

    model_config = ConfigDict(extra="forbid")

    known_hosts: str | None = None
    ssh_config: str | None = Field(
        default=None,
        description="OpenSSH client config to honour (default ~/.ssh/config), or 'none'",
    )
    defaults: ConnectionSpec = Field(default_factory=ConnectionSpec)
    vars: dict[str, Any] = Field(default_factory=dict)
    hosts: dict[str, HostSpec | None] = Field(default_factory=dict)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)

    @field_validator("hosts", "groups")
    @classmethod
    def _names(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # the loader checks each name where it is written; this keeps the model honest
        kind = "host" if info.field_name == "hosts" else "group"
        for name in value:
            problem = name_problem(name, kind)
            if problem:
                raise ValueError(f"{problem[0]} ({problem[1]})")
        return value


@dataclass(frozen=True)
class Become:
    user: str = "root"
    password_env: str | None = None


@dataclass(frozen=True)
class Console:
    """A resolved console: ``command`` (argv as one line) or ``socket``, login and prompts."""

    command: str | None = None
    socket: str | None = None
    user: str = "root"
    password_env: str | None = None
    login_prompt: str = LOGIN_PROMPT
    password_prompt: str = PASSWORD_PROMPT
    shell_prompt: str = SHELL_PROMPT
    timeout: float = 30.0

    @property
    def where(self) -> str:
        """How the console is reached, for messages: the socket or the program."""
        return self.socket or f"command: {self.command}"


@dataclass(frozen=True)
class Address:
    """One way to reach a host: where, and through which jump host.

    By default an address goes through the host's own jump host (if any);
    ``jump`` names another bastion for this address, ``direct`` none at all.
    """

    host: str
    port: int
    jump: Host | None = None
    direct: bool = False

    def __post_init__(self) -> None:
        if self.direct and self.jump is not None:
            raise ValueError(f"address {self.host}:{self.port}: direct, or via a jump host?")


@dataclass(frozen=True)
class Host:
    """A host ready to connect to: everything resolved, nothing optional left to guess."""

    name: str
    address: str
    port: int = 22
    user: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    identity_files: tuple[str, ...] = ()  # ssh_config IdentityFile (used when no key)
    identities_only: bool = False  # ssh_config IdentitiesOnly: only the named keys
    keepalive: float | None = None  # ssh_config ServerAliveInterval (seconds)
    fallback: tuple[Address, ...] = ()
    jump: Host | None = None
    become: Become | None = None
    reboot_command: str | None = None
    boot_id_command: str | None = None
    console: Console | None = None
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def jump_for(self, address: Address) -> Host | None:
        """The jump host that leads to ``address`` (its own, none if direct, else the host's)."""
        if address.direct:
            return None
        return address.jump if address.jump is not None else self.jump

    def template_view(self) -> dict[str, Any]:
        """What runbook templates see as ``host``."""
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "groups": list(self.groups),
            "vars": dict(self.vars),
        }
