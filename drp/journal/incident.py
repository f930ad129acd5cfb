"""Incidents: the tag that makes several runs one incident (``--incident``, ``$DRP_INCIDENT``).

An incident id is a short slug chosen by the operator (``2019-09-disk``): letters,
digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most
:data:`MAX_INCIDENT` characters. It is journaled in the data of ``run.started``
(or of the ``run.resumed`` that adds a run to an incident), so it is hash-chained
like every other fact; ``drp log report --incident ID`` folds its runs into one report.
"""

from __future__ import annotations

import re

from drp.errors import InputError, Problem

ENV_INCIDENT = "DRP_INCIDENT"
MAX_INCIDENT = 64
INCIDENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_incident(text: str, where: str = "--incident") -> str:
    """``text`` if it is a well-formed incident id; an :class:`InputError` located at
    ``where`` (the option or the variable it came from) otherwise."""
    problem = ""
    if not text:
        problem = "is empty"
    elif len(text) > MAX_INCIDENT:
        problem = f"is too long ({len(text)} characters, at most {MAX_INCIDENT})"
    elif not INCIDENT_RE.fullmatch(text):
        problem = f"{text!r} is not a short slug"
    if problem:
        raise InputError(
            [
                Problem(
                    "",
                    None,
                    None,
                    where,
                    f"incident id {problem}",
                    "use letters, digits, '.', '_' and '-', starting with a letter or digit: "
                    "e.g. 2019-09-disk",
                )
            ]
        )
    return text
