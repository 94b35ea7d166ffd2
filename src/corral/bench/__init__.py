"""Benchmarks on the simulator: corral against a baseline in the same run."""
