"""drp: a disaster-recovery runbook executor.

Declarative YAML runbooks, run over SSH against inventory hosts, with
checkpoints, retries, manual gates, dry runs and an audit log.
"""

__version__ = "0.1.0"
