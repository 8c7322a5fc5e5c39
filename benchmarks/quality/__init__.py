"""Quality experiments: the tuned comparison, the per-example instrument, sequences of requests, readings."""
