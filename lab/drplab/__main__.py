"""``python -m drplab``: see :mod:`drplab.cli`."""

from __future__ import annotations

import sys

from drplab.cli import main

sys.exit(main())
