"""runoff.risk."""
