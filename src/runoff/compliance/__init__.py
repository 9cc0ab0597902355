"""runoff.compliance."""
