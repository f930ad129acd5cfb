"""Notifications: a sink beside the console and the journal, on channels outside the infrastructure.

A run's events that a person must hear about (a gate waits, a step failed, a host
is unreachable, the run ended) go out on a webhook, by mail or to a command, from
a background thread that retries within a bound and journals every attempt
(``notify.sent`` / ``notify.failed``). It may fail, and says so in the journal,
but it never blocks or fails the run.

- :mod:`drp.notify.notice`: which events notify, and what the notice says;
- :mod:`drp.notify.channels`: webhook, email, command (one attempt each);
- :mod:`drp.notify.worker`: the queue, the retries, the journaling;
- :mod:`drp.notify.config`: the team's config file and a runbook's ``notify:``.

Only the CLI wires it (``drp.cli.run``).
"""
