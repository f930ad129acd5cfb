"""Read a runbook's step lists with their includes expanded, each step located in its file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drp import yamlsrc
from drp.errors import Problem, RunbookError

MAX_INCLUDE_DEPTH = 5


@dataclass(frozen=True)
class _Located:
    data: Any
    source: yamlsrc.Source
    loc: yamlsrc.Loc


class _Collector:
    """Reads the main file and its includes, remembering every file's bytes for the hash."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.files: list[tuple[str, bytes]] = []

    def read(self, path: Path) -> yamlsrc.Source:
        source = yamlsrc.load(path)
        self.files.append((str(path), path.read_bytes()))
        return source

    def steps(
        self,
        items: Any,
        source: yamlsrc.Source,
        loc: yamlsrc.Loc,
        depth: int,
        chain: tuple[Path, ...],
    ) -> Iterator[_Located]:
        if not isinstance(items, list):
            self.problems.append(
                source.problem(loc, "must be a list of steps", "write '- id: ...' items")
            )
            return
        for index, item in enumerate(items):
            here = (*loc, index)
            if isinstance(item, dict) and "include" in item:
                yield from self._include(item, source, here, depth, chain)
            else:
                yield _Located(item, source, here)

    def _include(
        self,
        item: dict[str, Any],
        source: yamlsrc.Source,
        loc: yamlsrc.Loc,
        depth: int,
        chain: tuple[Path, ...],
    ) -> Iterator[_Located]:
        extra = set(item) - {"include"}
        if extra or not isinstance(item["include"], str):
            self.problems.append(
                source.problem(
                    loc,
                    "an include item is exactly '- include: path/to/steps.yaml'",
                    f"unexpected keys: {', '.join(sorted(extra))}" if extra else "",
                )
            )
            return
        target = (Path(source.path).parent / item["include"]).resolve()
        if depth >= MAX_INCLUDE_DEPTH or target in chain:
            self.problems.append(
                source.problem(
                    (*loc, "include"),
                    "include cycle or nesting deeper than 5",
                    "an included file may not include its includer",
                )
            )
            return
        if not target.is_file():
            self.problems.append(
                source.problem(
                    (*loc, "include"),
                    f"no such include file {item['include']!r} (looked for {target})",
                    "the path is relative to the file that includes it",
                )
            )
            return
        try:
            included = self.read(target)
        except RunbookError as exc:
            self.problems.extend(exc.problems)
            return
        except Exception as exc:  # InputError from yamlsrc
            problems = getattr(exc, "problems", None)
            if problems is None:
                raise
            self.problems.extend(problems)
            return
        data = included.data
        inner_loc: yamlsrc.Loc = ()
        if isinstance(data, dict) and "steps" in data:
            data, inner_loc = data["steps"], ("steps",)
        yield from self.steps(data, included, inner_loc, depth + 1, (*chain, target))
