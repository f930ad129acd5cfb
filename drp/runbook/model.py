"""The runbook language as pydantic models: what a runbook may say, and nothing else.

``drp schema`` exports these models as JSON Schema for editors. The spelling of
each key is documented with an example in ``docs/runbooks.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drp.fields import Duration, PositiveDuration
from drp.runbook.notify import NotifySpec

STEP_ID = r"^[a-z0-9][a-z0-9_.-]*$"
NAME = r"^[a-z0-9][a-z0-9_-]*$"
#: a principal of an OpenSSH allowed_signers file: no blanks, no comma, no quote
PRINCIPAL = r"^[^\s,\"'*?!]+$"
ACTIONS = ("run", "local", "wait", "reboot", "manual", "put")


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


FailureName = Literal["connection", "timeout", "exit", "verify"]
ExitCode = Annotated[int, Field(ge=0, le=255, description="a process exit code")]
Regex = Annotated[str, Field(description="a Python regular expression")]
IDENTIFIER = r"^[a-z_][a-z0-9_]*$"
JsonDict = dict[str, Any]


def _or(*shorthands: JsonDict) -> Callable[[JsonDict], None]:
    """JSON Schema for a field that also takes shorthand forms its validator expands.

    ``manual: "text"`` for ``manual: {instructions: text}`` and the like: the
    schema editors see must accept what the loader accepts.
    """

    def extend(schema: JsonDict) -> None:
        keep: JsonDict = {
            k: schema.pop(k) for k in ("title", "description", "default") if k in schema
        }
        options = schema.pop("anyOf", None)
        if not isinstance(options, list):
            options = [dict(schema)]
            schema.clear()
        schema.update(keep)
        schema["anyOf"] = [*shorthands, *options]

    return extend


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParamType(StrEnum):
    STRING = "string"
    INT = "int"
    BOOL = "bool"
    CHOICE = "choice"
    DURATION = "duration"
    HOST = "host"
    GROUP = "group"


class Param(Strict):
    """A typed input of the runbook, given with ``--param NAME=VALUE``."""

    type: ParamType = ParamType.STRING
    required: bool = False
    default: Any = None
    pattern: Regex | None = None
    choices: list[str] | None = None
    secret: bool = Field(default=False, description="masked in plans, console and journal")
    help: str = ""

    _check_pattern = field_validator("pattern")(classmethod(lambda cls, v: _regex(v)))

    @model_validator(mode="after")
    def _consistent(self) -> Param:
        if self.type is ParamType.CHOICE and not self.choices:
            raise ValueError("a 'choice' param needs 'choices: [a, b]'")
        if self.choices and self.type is not ParamType.CHOICE:
            raise ValueError("'choices' only goes with 'type: choice'")
        if self.required and self.default is not None:
            raise ValueError("a param with a default is not required; drop one of them")
        if not self.required and self.default is None:
            # it would reach templates as None, and a command as the word 'None'
            raise ValueError(
                "an optional param needs a default: give it a default (e.g. '') or make it required"
            )
        return self


class RetryPolicy(Strict):
    """How often and how patiently to retry a step, and which failures deserve it."""

    attempts: int = Field(default=1, ge=1, le=100)
    delay: Duration = 1.0
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    max_delay: Duration = 60.0
    jitter: bool = True
    failures: list[FailureName | ExitCode] = Field(
        default_factory=lambda: list[FailureName | ExitCode](["connection", "timeout"]),
        description="which failures are retried: connection (lost or refused), timeout, "
        "exit (any non-zero exit code), verify (a verify command failed), or exit codes",
    )


class Defaults(Strict):
    """Settings every step inherits unless it says otherwise."""

    become: bool = False
    timeout: PositiveDuration | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    on_failure: Literal["abort", "continue", "rollback"] = "abort"


class Until(Strict):
    """When a ``wait`` is over: exit code, and/or output matching (or not) a regex."""

    exit: ExitCode | None = 0
    match: Regex | None = None
    not_match: Regex | None = None

    _check = field_validator("match", "not_match")(classmethod(lambda cls, v: _regex(v)))


class WaitSpec(Strict):
    command: str
    until: Until = Field(default_factory=Until)
    interval: PositiveDuration = 5.0
    timeout: PositiveDuration = 3600.0
    progress: Regex | None = Field(
        default=None, description="regex whose first group is a percentage, e.g. resync"
    )

    _check = field_validator("progress")(classmethod(lambda cls, v: _regex(v)))


class RebootSpec(Strict):
    timeout: PositiveDuration = 600.0
    command: str | None = Field(default=None, description="defaults to the host's or 'reboot'")
    boot_id_command: str | None = None


class ManualSpec(Strict):
    instructions: str


class PutSpec(Strict):
    dest: str
    src: str | None = None
    content: str | None = None
    template: bool = False
    mode: str | None = Field(default=None, pattern=r"^0?[0-7]{3,4}$")
    owner: str | None = None
    group: str | None = None
    backup: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> PutSpec:
        if (self.src is None) == (self.content is None):
            raise ValueError("give exactly one of 'src' (a file) or 'content' (inline text)")
        return self


class Step(Strict):
    """One step: exactly one action, plus the options that say how to run it."""

    id: str = Field(pattern=STEP_ID, description="stable checkpoint key; never rename")
    name: str = ""
    description: str = ""
    run: str | None = None
    local: str | None = None
    wait: WaitSpec | None = None
    reboot: RebootSpec | None = Field(
        default=None,
        json_schema_extra=_or({"const": True, "description": "reboot with the defaults"}),
    )
    manual: ManualSpec | None = Field(
        default=None,
        json_schema_extra=_or({"type": "string", "description": "the instructions"}),
    )
    put: PutSpec | None = None
    when: str | None = Field(default=None, description="Jinja expression; false skips")
    unless: str | None = Field(default=None, description="read-only guard; exit 0 skips")
    verify: list[str] = Field(
        default_factory=list,
        json_schema_extra=_or({"type": "string", "description": "one command"}),
    )
    retry: RetryPolicy | None = None
    timeout: PositiveDuration | None = None
    capture: dict[str, Regex | None] = Field(
        default_factory=dict,
        description="NAME (all of stdout), or NAME: REGEX (group 1, or the whole match)",
        json_schema_extra=_or(
            {"type": "string", "pattern": IDENTIFIER, "description": "stdout as NAME"}
        ),
    )
    rollback: str | None = None
    on_failure: Literal["abort", "continue", "rollback"] | None = None
    hosts: str | None = Field(default=None, description="narrow the run's targets")
    become: bool | None = None
    console: bool | None = Field(
        default=None,
        description="may run over the host's serial console when no SSH path answers "
        "(default: the runbook's console)",
    )
    sensitive: bool = False
    confirm: bool | str = Field(default=False, description="destructive: ask first")
    approvers: list[Annotated[str, Field(pattern=PRINCIPAL)]] = Field(
        default_factory=list,
        description="a manual or confirm step waits for signed approvals (drp approve) by "
        "these principals of the allowed_signers file; never by the run's own operator",
    )
    min_approvals: int | None = Field(
        default=None, ge=1, description="how many of the approvers must approve (default 1)"
    )
    gate_timeout: PositiveDuration | None = Field(
        default=None,
        description="a manual or confirm step's deadline for its answer (e.g. 2h): "
        "then on_timeout applies",
    )
    on_timeout: Literal["notify", "fail", "pause"] | None = Field(
        default=None,
        description="when gate_timeout passes: notify (and keep waiting), fail the step, "
        "or pause the run (default notify)",
    )
    success_codes: list[ExitCode] = Field(default_factory=lambda: [0])

    model_config = ConfigDict(
        # exactly one action (a null one is no action), as _one_action checks
        json_schema_extra={
            "oneOf": [
                {"required": [a], "properties": {a: {"not": {"type": "null"}}}} for a in ACTIONS
            ]
        },
    )

    @field_validator("manual", mode="before")
    @classmethod
    def _manual_text(cls, value: Any) -> Any:
        return {"instructions": value} if isinstance(value, str) else value

    @field_validator("reboot", mode="before")
    @classmethod
    def _reboot_flag(cls, value: Any) -> Any:
        return {} if value is True else value

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("capture", mode="before")
    @classmethod
    def _capture_map(cls, value: Any) -> Any:
        return {value: None} if isinstance(value, str) else value

    @field_validator("capture")
    @classmethod
    def _capture_names(cls, value: dict[str, str | None]) -> dict[str, str | None]:
        for name, pattern in value.items():
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"capture name {name!r} must be a lower-case identifier")
            _regex(pattern)
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            which = ", ".join(given) if given else "none"
            raise ValueError(
                f"a step has exactly one action of {', '.join(ACTIONS)} (found: {which})"
            )
        if self.capture and self.kind not in ("run", "local", "wait"):
            raise ValueError("'capture' works with run, local and wait steps")
        return self

    @model_validator(mode="after")
    def _approvals(self) -> Step:
        if self.min_approvals is not None and not self.approvers:
            raise ValueError("'min_approvals' needs 'approvers: [name, ...]' (who may approve)")
        if self.approvers and self.kind != "manual" and not self.confirm:
            raise ValueError(
                "'approvers' goes with a manual step or a destructive one ('confirm: true')"
            )
        if self.on_timeout is not None and self.gate_timeout is None:
            raise ValueError("'on_timeout' needs 'gate_timeout: DURATION' (the deadline)")
        if self.gate_timeout is not None and self.kind != "manual" and not self.confirm:
            raise ValueError(
                "'gate_timeout' goes with a manual step or a destructive one ('confirm: true')"
            )
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("'approvers' names someone twice")
        if self.needed_approvals > len(self.approvers):
            raise ValueError(
                f"'min_approvals: {self.min_approvals}' is more than the "
                f"{len(self.approvers)} approver(s) listed"
            )
        return self

    @property
    def needed_approvals(self) -> int:
        """How many distinct approvers must approve (0: the step needs no approval)."""
        return (self.min_approvals or 1) if self.approvers else 0

    @property
    def kind(self) -> str:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    @property
    def destructive(self) -> bool:
        return bool(self.confirm)

    @property
    def title(self) -> str:
        return self.name or self.id


class Include(Strict):
    """``- include: common/checks.yaml`` pulls in a list of steps written once."""

    include: str


class RunbookHeader(Strict):
    """Everything in a runbook file but its steps (validated on its own, for precise errors)."""

    name: str = Field(pattern=NAME)
    summary: str = ""
    description: str = ""
    version: int = 1
    params: dict[str, Param] = Field(
        default_factory=dict, json_schema_extra={"propertyNames": {"pattern": IDENTIFIER}}
    )
    targets: str | None = Field(
        default=None,
        description="inventory pattern; --host / --targets override; "
        "leave it out to make the operator choose",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    serial: int | str | None = Field(
        default=None, description="rolling batches: a host count or a percentage like '25%'"
    )
    max_fail_percentage: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="halt the rollout when more than this share of hosts failed",
    )
    console: bool = Field(
        default=False,
        description="steps may run over a host's serial console when no SSH path answers",
    )
    notify: NotifySpec | None = Field(
        default=None,
        description="channels told when the run pauses, fails, loses a host or ends "
        "(besides the team's config file)",
    )

    @field_validator("serial")
    @classmethod
    def _serial(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(r"\d{1,3}%", value.strip()):
            raise ValueError("serial is a host count (e.g. 2) or a percentage (e.g. '25%')")
        if isinstance(value, int) and value < 1:
            raise ValueError("serial must be at least 1")
        return value

    @field_validator("params")
    @classmethod
    def _param_names(cls, value: dict[str, Param]) -> dict[str, Param]:
        for name in value:
            if not re.match(IDENTIFIER, name):
                raise ValueError(f"param name {name!r} must be a lower-case identifier")
        return value


class RunbookSpec(RunbookHeader):
    """A whole runbook file, as editors see it (``drp schema``)."""

    steps: list[Step | Include] = Field(min_length=1)
