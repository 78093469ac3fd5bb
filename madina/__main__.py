import sys

from madina.cli import main

sys.exit(main())
