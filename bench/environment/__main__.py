"""Entry point for ``python -m bench.environment``."""

import sys

from bench.environment.run import main

sys.exit(main())
