"""runoff.plan."""
