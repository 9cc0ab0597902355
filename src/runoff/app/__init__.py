"""Use cases that combine the pure core with the store; the composition root lives in ``context``."""
