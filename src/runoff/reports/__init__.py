"""runoff.reports."""
