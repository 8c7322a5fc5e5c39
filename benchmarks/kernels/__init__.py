"""Kernel and end-to-end speed benchmarks: each op against its baselines, in the same run."""
