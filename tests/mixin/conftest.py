"""Fixtures of the mixin tests."""

from __future__ import annotations

import pytest

from salespulse.mixin.targets import DEFAULT_TARGETS, Targets, load_targets


@pytest.fixture(scope="session")
def targets() -> Targets:
    """The checked-in targets file."""
    return load_targets(DEFAULT_TARGETS)
