"""Entry point for ``python -m bench.energy``."""

import sys

from bench.energy.run import main

sys.exit(main())
