"""Entry point for ``python -m bench.operations``."""

import sys

from bench.operations.run import main

sys.exit(main())
