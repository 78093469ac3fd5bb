"""``python -m bench.waste``: the waste benchmarks (collection planning)."""

from bench.waste.planning import main

main()
