"""Custom layers that XLA:CPU runs faster than the plain Flax ones (why: bench/README.md)."""
