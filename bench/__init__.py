"""Benchmarks of centrifugo-types (run with ``scripts/bench``; see BENCHMARKS.md)."""
