"""Allows ``python -m drp``."""

from drp.cli.app import main

main()
