"""The checked-in ``docs/kpis.md`` is what ``state/kpis.py`` generates."""

from __future__ import annotations

import doctest
from pathlib import Path

import salespulse.docs_gen
from salespulse.docs_gen import COMPONENTS, KPIS_MD, render_kpis_md, write_kpis_md
from state.kpis import KPIS


def test_checked_in_kpi_docs_are_up_to_date() -> None:
    assert KPIS_MD.exists(), "docs/kpis.md is missing: run `salespulse generate`"
    assert KPIS_MD.read_text() == render_kpis_md(), (
        "docs/kpis.md is out of date with state/kpis.py: run `salespulse generate`"
    )


def test_every_kpi_and_component_is_documented() -> None:
    text = render_kpis_md()
    for kpi in KPIS:
        assert f"(`{kpi.name}`)" in text and f"`{kpi.metric}`" in text
        assert kpi.definition in text and kpi.counts in text
    undocumented = {c for k in KPIS for c in k.components} - COMPONENTS.keys()
    assert not undocumented, f"describe these components in salespulse/docs_gen.py: {undocumented}"


def test_writing_the_docs_reports_whether_the_file_changed(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "kpis.md"
    assert write_kpis_md(target) is True
    assert write_kpis_md(str(target)) is False
    assert target.read_text() == render_kpis_md()


def test_the_module_docstring_example_holds() -> None:
    result = doctest.testmod(salespulse.docs_gen, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
