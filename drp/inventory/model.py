"""Inventory models: the YAML shape (pydantic) and the resolved, frozen :class:`Host`.

```yaml
known_hosts: ~/.ssh/known_hosts     # default for every host
defaults: {user: root, port: 22}    # connection defaults
hosts:
  db1:
    address: 203.0.113.10
    fallback: [198.51.100.10]       # out-of-band path, tried when the primary fails
    jump: bastion                   # an inventory host, or user@host:port
    become: true                    # or {user: root, password_env: DRP_BECOME_PASSWORD}
    vars: {bay: 2}
groups:
  databases: {hosts: [db1], children: [replicas], vars: {role: db}}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from drp.fields import Duration

_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$"


class BecomeSpec(BaseModel):
    """Privilege escalation with sudo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(default="sudo", pattern=r"^sudo$")
    user: str = "root"
    password_env: str | None = Field(
        default=None, description="environment variable holding the sudo password"
    )


class ConnectionSpec(BaseModel):
    """Connection settings that can be given per host or as defaults."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    key: str | None = Field(default=None, description="path of the private key")
    known_hosts: str | None = None
    connect_timeout: Duration | None = None
    become: bool | BecomeSpec | None = None
    reboot_command: str | None = None
    boot_id_command: str | None = None


class HostSpec(ConnectionSpec):
    """One host as written in the inventory."""

    address: str | None = Field(default=None, description="defaults to the host's name")
    fallback: list[str] = Field(
        default_factory=list,
        description="out-of-band addresses ('addr' or 'addr:port'), tried in order",
    )
    jump: str | None = Field(default=None, description="bastion: inventory host or user@host:port")
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
    defaults: ConnectionSpec = Field(default_factory=ConnectionSpec)
    vars: dict[str, Any] = Field(default_factory=dict)
    hosts: dict[str, HostSpec | None] = Field(default_factory=dict)
    groups: dict[str, GroupSpec] = Field(default_factory=dict)

    @field_validator("hosts", "groups")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        import re

        for name in value:
            if not re.match(_NAME, name):
                raise ValueError(f"invalid name {name!r}: use letters, digits, '.', '_', '-'")
        return value


@dataclass(frozen=True)
class Become:
    user: str = "root"
    password_env: str | None = None


@dataclass(frozen=True)
class Address:
    host: str
    port: int


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
    fallback: tuple[Address, ...] = ()
    jump: Host | None = None
    become: Become | None = None
    reboot_command: str | None = None
    boot_id_command: str | None = None
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

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
