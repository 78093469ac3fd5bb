"""``python -m bench.waste [--quick]``: the waste benchmarks, one after the other: the processor
(readings/s per worker, reading -> alert latency; :mod:`bench.waste.run`) and collection planning
(:mod:`bench.waste.planning`)."""

import sys

from bench.waste import planning, run

code = run.main(["--quick"] if "--quick" in sys.argv[1:] else [])
planning.main()
sys.exit(code)
