"""runoff.store."""
