"""On-demand benchmarks (not run in CI): each prints a table, then one JSON object as its last line."""
