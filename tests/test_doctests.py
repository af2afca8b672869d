"""The usage examples in module docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "agents.link_buffer",
    "salespulse.config",
    "state.aggregates",
    "state.calendar",
    "state.money",
    "state.dirty",
    "state.pacing",
    "state.processor",
    "state.readout",
    "state.snapshot",
    "streams.generator",
    "streams.schema",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
