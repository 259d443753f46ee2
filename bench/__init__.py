"""Benchmarks: run each module with `python3 -m bench.<name>` (see bench/README.md)."""
