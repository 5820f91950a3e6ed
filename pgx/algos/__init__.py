"""Training loops, each readable top to bottom."""
