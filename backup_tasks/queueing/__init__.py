"""The task queue: the broker client, single-flight locks, slot headers and the plant's scheduler."""
