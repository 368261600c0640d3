"""The plant-scale benchmark: see bench/run.py."""
