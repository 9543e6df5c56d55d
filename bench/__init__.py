"""`make bench`: the load generator (bench.loadgen) and the orchestrator (bench.run). See README.md."""
