"""A run folder's files: one reader for its JSON artifacts, content digests, all-or-nothing writes, the lock
and staleness of its steps, and its wall-clock timings."""
