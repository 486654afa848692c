"""Benchmarks: printed and written, never asserted (``python -m bench``)."""
