"""The runbook language: models, loading with located errors, params and templating.

Import from the modules (``drp.runbook.loader``, ``drp.runbook.params``, …): the
package itself imports nothing, so ``drp list`` can read the catalog without
loading the models, pydantic schemas and Jinja2 that validating a runbook needs.
"""
