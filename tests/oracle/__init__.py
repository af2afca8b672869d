"""Independent batch oracle: every KPI recomputed from the raw event log (see ``batch``)."""

from tests.oracle.batch import ORACLE_KPIS, BatchOracle, Window

__all__ = ["ORACLE_KPIS", "BatchOracle", "Window"]
