"""Entry point for ``python -m bench.mobility``."""

import sys

from bench.mobility.run import main

sys.exit(main())
