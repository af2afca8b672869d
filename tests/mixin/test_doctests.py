"""The usage examples in the mixin's module docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = [
    "salespulse.mixin.annotations",
    "salespulse.mixin.command",
    "salespulse.mixin.dashboards",
    "salespulse.mixin.panels",
    "salespulse.mixin.render",
    "salespulse.mixin.rules",
    "salespulse.mixin.targets",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # command's example reads deploy/
    result = doctest.testmod(importlib.import_module(name), raise_on_error=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0
