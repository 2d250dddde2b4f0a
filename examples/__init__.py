"""Examples and the demo (``python -m examples.demo``)."""
