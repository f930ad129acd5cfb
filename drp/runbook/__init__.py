"""The runbook language: models, loading with located errors, params and templating."""

from drp.runbook.loader import Runbook, load_runbook
from drp.runbook.params import Params, parse_assignments, resolve_params

__all__ = ["Params", "Runbook", "load_runbook", "parse_assignments", "resolve_params"]
