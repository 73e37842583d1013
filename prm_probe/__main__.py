"""``python -m prm_probe`` runs the command-line interface."""

import sys

from prm_probe.cli import main

sys.exit(main())
