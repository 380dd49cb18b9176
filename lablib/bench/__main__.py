"""``python -m lablib.bench attention [options]``: see ``lablib.bench.cli``."""

import sys

from lablib.bench.cli import main

sys.exit(main())
