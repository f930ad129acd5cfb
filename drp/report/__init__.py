"""Audit-log review: list runs, build their timeline, render reports, export records.

- :mod:`~drp.report.summary`: :class:`RunData`, :class:`RunSummary`
- :mod:`~drp.report.listing`: :func:`list_runs` (``drp log list``, with its cache)
- :mod:`~drp.report.timeline`: :func:`build_timeline` (sessions, steps, rollbacks, decisions,
  notes, milestones, human vs machine time) over the values of :mod:`~drp.report.model`
- :mod:`~drp.report.render`: :func:`report` in ``md`` / ``json`` / ``html``
- :mod:`~drp.report.html`: the self-contained HTML report with its SVG chart
- :mod:`~drp.report.export`: :func:`export` as ``jsonl`` / ``csv``
"""

from drp.report.export import EXPORT_FORMATS, export
from drp.report.listing import list_runs
from drp.report.render import FORMATS, report, report_dict
from drp.report.summary import (
    RunData,
    RunFilter,
    RunSummary,
    load_path,
    load_run,
    summarize,
)
from drp.report.timeline import Timeline, build_timeline

__all__ = [
    "EXPORT_FORMATS",
    "FORMATS",
    "RunData",
    "RunFilter",
    "RunSummary",
    "Timeline",
    "build_timeline",
    "export",
    "list_runs",
    "load_path",
    "load_run",
    "report",
    "report_dict",
    "summarize",
]
