"""Kubernetes objects derived from the mixin: PrometheusRule and ConfigMaps.

The hand-written manifests in ``deploy/kubernetes/`` list these generated files as
kustomize resources; ``salespulse generate`` writes them into
``deploy/kubernetes/generated/``.
"""

from __future__ import annotations

from typing import Any

from salespulse.mixin.render import dump_json

NAMESPACE = "salespulse"
PART_OF = {"app.kubernetes.io/part-of": "salespulse"}


def prometheus_rule(groups: dict[str, Any]) -> dict[str, Any]:
    """The Prometheus Operator ``PrometheusRule`` holding the same rule groups."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "salespulse", "labels": {**PART_OF, "role": "alert-rules"}},
        "spec": groups,
    }


def dashboard_configmaps(boards: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One ConfigMap per board, labelled for the Grafana dashboard sidecar."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"salespulse-dashboard-{name}",
                "labels": {**PART_OF, "grafana_dashboard": "1"},
                "annotations": {"grafana_folder": "SalesPulse"},
            },
            "data": {f"salespulse-{name}.json": dump_json(model)},
        }
        for name, model in sorted(boards.items())
    ]


def targets_configmap(targets_text: str) -> dict[str, Any]:
    """The targets file as written, mounted into the collector (``SALESPULSE_TARGETS``)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "salespulse-targets", "labels": dict(PART_OF)},
        "data": {"targets.yaml": targets_text},
    }
