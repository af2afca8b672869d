"""Running promtool (Debian package ``prometheus``) from the tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from salespulse.mixin.rule_tests import rule_test_document

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules" / "salespulse.rules.yml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "rules" / "tests"


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run promtool; fail (not skip) when it is missing: CI installs it."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: run scripts/install-system-deps.sh")
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def rule_test_files() -> dict[Path, dict[str, Any]]:
    """The checked-in promtool test files, parsed."""
    return {p: yaml.safe_load(p.read_text()) for p in sorted(RULE_TESTS.glob("*.yml"))}


def run_rule_tests(
    tmp: Path, rules: Path, cases: list[dict[str, Any]], evaluation_interval: str
) -> subprocess.CompletedProcess[str]:
    """Run promtool test cases against a rule file, from a file written under ``tmp``."""
    doc = rule_test_document(cases, evaluation_interval, str(rules))
    path = tmp / "cases_test.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return promtool("test", "rules", path)
