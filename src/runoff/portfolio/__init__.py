"""runoff.portfolio."""
