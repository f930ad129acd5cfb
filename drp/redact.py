"""Masking secrets: one function applied before any value reaches an event, a log or the console."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MASK = "********"


@dataclass(frozen=True)
class Redactor:
    """Replaces every occurrence of each secret value with :data:`MASK`, recursively."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def of(cls, values: Iterable[object]) -> Redactor:
        texts = {str(v) for v in values if v is not None and str(v) != ""}
        # longest first, so a secret that contains another is masked whole
        return cls(tuple(sorted(texts, key=len, reverse=True)))

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def __call__(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value
