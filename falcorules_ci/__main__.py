"""``python -m falcorules_ci``: the command line."""

from __future__ import annotations

import sys

from falcorules_ci.cli import main

sys.exit(main())
