"""keybimp's benchmarks: `make bench` (never part of `make test`) runs `python -m benchmarks.run_all`."""
