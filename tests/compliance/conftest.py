"""Fixtures for the compliance tests."""

from __future__ import annotations

import pytest

from runoff.compliance.profile import LenderProfile
from tests.compliance.factories import profile


@pytest.fixture
def cfc() -> LenderProfile:
    """A Chinese consumer-finance company collecting itself and through agencies."""
    return profile(collector_types=["first-party", "agency"])
