"""Deploy manifests, validated offline.

Kubernetes built-in kinds are checked against the Kubernetes JSON schemas that the PyPI
package ``kubernetes-validate`` ships (strict: unknown fields fail). Custom resources have
no schema offline: the PrometheusRule's rules go through ``promtool check rules``, and the
Strimzi and Prometheus Operator objects get structural checks. The compose file is parsed
by ``compose-spec`` (PyPI; the Rust compose_spec parser, which rejects unknown keys and bad
values), after YAML merge keys are resolved. Cross-references (selectors, ports, config
maps, volumes, commands) are checked by hand.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from compose_spec import PyCompose

from salespulse.cli import COMMANDS
from salespulse.mixin.dashboards import dashboards
from salespulse.mixin.rules import rule_groups
from salespulse.mixin.targets import Targets, load_targets
from tests.mixin.promtool import promtool

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
K8S_VERSION = "1.32.0"
CUSTOM_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "ServiceMonitor", "PrometheusRule"}
Doc = dict[str, Any]


@pytest.fixture(scope="module")
def targets() -> Targets:
    return load_targets()


def kustomize_resources() -> list[Doc]:
    """The documents of every resource the kustomization lists, as written."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs: list[Doc] = []
    for rel in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / rel).read_text()) if d]
    return docs


@pytest.fixture(scope="module")
def resources() -> list[Doc]:
    return kustomize_resources()


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[Doc]) -> dict[str, Doc]:
    return {
        d["metadata"]["name"]: d["spec"]["template"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
    }


def test_every_resource_file_is_listed_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {str(p.relative_to(K8S)) for p in K8S.rglob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk == listed


def test_builtin_kinds_match_the_kubernetes_schemas(resources: list[Doc]) -> None:
    checked = 0
    for doc in resources:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 15


def test_kustomize_build_validates_when_kubectl_is_present(resources: list[Doc]) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the kustomize build itself is not checked")
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    built = [d for d in yaml.safe_load_all(out.stdout) if d]
    assert len(built) == len(resources)
    for doc in built:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "salespulse", doc["metadata"]["name"]
        if doc["kind"] not in CUSTOM_KINDS:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    images = {
        c["image"]
        for d in built
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert "salespulse" not in images, "the kustomize image override did not apply"


def test_services_select_pods_and_name_their_ports(resources: list[Doc]) -> None:
    pods = pod_specs(resources)
    for name, svc in by_kind(resources, "Service").items():
        selector = svc["spec"]["selector"]
        matching = [p for p in pods.values() if selector.items() <= p["metadata"]["labels"].items()]
        assert len(matching) == 1, f"Service {name} selects {len(matching)} workloads"
        ports = {p["name"] for c in matching[0]["spec"]["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["name"])
            assert isinstance(target, int) or target in ports or name.endswith("worker"), (
                f"Service {name}: no container port named {target}"
            )


def test_workloads_use_existing_config_and_the_cli(resources: list[Doc]) -> None:
    configmaps = set(by_kind(resources, "ConfigMap"))
    for name, pod in pod_specs(resources).items():
        for container in pod["spec"]["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps, name
                if "secretRef" in source:
                    assert source["secretRef"].get("optional") is True, f"{name}: required secret"
            if container["image"] == "salespulse":
                assert container["args"][0] in COMMANDS, f"{name}: unknown command"
        for volume in pod["spec"].get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, name


def test_workers_keep_rocksdb_on_a_persistent_volume(resources: list[Doc]) -> None:
    worker = by_kind(resources, "StatefulSet")["salespulse-worker"]
    env = by_kind(resources, "ConfigMap")["salespulse-env"]["data"]
    claim = worker["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim] == env["SALESPULSE_HOME"]
    assert container["args"][:2] == ["worker", "--worker-id"]


def test_gateway_scales_with_an_hpa(resources: list[Doc]) -> None:
    hpa = by_kind(resources, "HorizontalPodAutoscaler")["salespulse-gateway"]
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    assert target["name"] in by_kind(resources, "Deployment")
    assert hpa["spec"]["minReplicas"] >= 2


def test_strimzi_kafka_is_kraft_with_node_pools_and_topics(resources: list[Doc]) -> None:
    (kafka,) = by_kind(resources, "Kafka").values()
    assert kafka["apiVersion"] == "kafka.strimzi.io/v1beta2"
    assert kafka["metadata"]["annotations"] == {
        "strimzi.io/node-pools": "enabled",
        "strimzi.io/kraft": "enabled",
    }
    assert "zookeeper" not in kafka["spec"]
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all({"name", "port", "type", "tls"} <= set(listener) for listener in listeners)
    cluster = kafka["metadata"]["name"]
    pools = by_kind(resources, "KafkaNodePool")
    assert pools and all(
        p["metadata"]["labels"]["strimzi.io/cluster"] == cluster for p in pools.values()
    )
    assert set().union(*(p["spec"]["roles"] for p in pools.values())) == {"controller", "broker"}
    nodes = sum(p["spec"]["replicas"] for p in pools.values())
    env = by_kind(resources, "ConfigMap")["salespulse-env"]["data"]
    assert env["SALESPULSE_KAFKA_BROKERS"] == f"{cluster}-kafka-bootstrap:{listeners[0]['port']}"
    topics = by_kind(resources, "KafkaTopic")
    assert set(topics) == {"salespulse-events", "salespulse-dead-letters"}
    for topic in topics.values():
        assert topic["apiVersion"] == "kafka.strimzi.io/v1beta2"
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert topic["spec"]["partitions"] == int(env["SALESPULSE_PARTITIONS"])
        assert topic["spec"]["replicas"] <= nodes
    workers = by_kind(resources, "StatefulSet")["salespulse-worker"]["spec"]["replicas"]
    assert workers <= int(env["SALESPULSE_PARTITIONS"])


def test_service_monitor_scrapes_collector_and_gateway_as_jobs(
    resources: list[Doc], targets: Targets
) -> None:
    (monitor,) = by_kind(resources, "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "selector", "endpoints", "namespaceSelector"}
    key = spec["selector"]["matchExpressions"][0]["key"]
    assert key == spec["jobLabel"]
    selected = {
        n: s
        for n, s in by_kind(resources, "Service").items()
        if key in s["metadata"].get("labels", {})
    }
    jobs = {s["metadata"]["labels"][key] for s in selected.values()}
    assert targets.pipeline_alerts.collector_down is not None
    assert targets.pipeline_alerts.collector_down.job in jobs
    ports = {p["name"] for s in selected.values() for p in s["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
        assert endpoint["port"] in ports


def test_prometheus_rule_holds_the_generated_rules(
    resources: list[Doc], targets: Targets, tmp_path: Path
) -> None:
    (rule,) = by_kind(resources, "PrometheusRule").values()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    assert rule["spec"] == rule_groups(targets)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmaps_hold_the_boards(resources: list[Doc], targets: Targets) -> None:
    maps = {n: m for n, m in by_kind(resources, "ConfigMap").items() if "dashboard" in n}
    boards = dashboards(targets)
    assert len(maps) == len(boards)
    for name, model in boards.items():
        cm = maps[f"salespulse-dashboard-{name}"]
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(cm["data"][f"salespulse-{name}.json"]) == model


def test_targets_configmap_is_the_targets_file(resources: list[Doc]) -> None:
    cm = by_kind(resources, "ConfigMap")["salespulse-targets"]
    assert cm["data"]["targets.yaml"] == (REPO / "deploy" / "targets.yaml").read_text()
    env = by_kind(resources, "ConfigMap")["salespulse-env"]["data"]
    collector = by_kind(resources, "Deployment")["salespulse-collector"]["spec"]["template"]
    mount = collector["spec"]["containers"][0]["volumeMounts"][0]["mountPath"]
    assert env["SALESPULSE_TARGETS"] == f"{mount}/targets.yaml"


# --- docker compose -------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Doc:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_file_parses_under_the_compose_spec(compose: Doc) -> None:
    parsed = PyCompose.from_json(json.dumps(compose))
    assert set(parsed.service_names()) >= {
        "kafka",
        "redis",
        "worker-1",
        "collector",
        "gateway",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_compose_spec_parser_rejects_mistakes(compose: Doc) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["collector"]["healthcheck"]["intervall"] = "5s"
    with pytest.raises(ValueError, match="intervall"):
        PyCompose.from_json(json.dumps(broken))


def test_compose_references_resolve(compose: Doc) -> None:
    services, volumes = compose["services"], set(compose.get("volumes", {}))
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} missing"
            else:
                assert source in volumes, f"{name}: volume {source} not declared"
        image = svc.get("image", "")
        assert image and not image.endswith(":latest"), f"{name}: pin the image"


def test_compose_workers_have_their_own_state_and_ids(compose: Doc) -> None:
    workers = {n: s for n, s in compose["services"].items() if n.startswith("worker")}
    assert len(workers) >= 2
    ids = [s["command"][s["command"].index("--worker-id") + 1] for s in workers.values()]
    state = [s["volumes"][0].split(":")[0] for s in workers.values()]
    assert len(set(ids)) == len(ids) and len(set(state)) == len(state)
    partitions = next(iter(workers.values()))["environment"]["SALESPULSE_PARTITIONS"]
    assert f"--partitions {partitions}" in compose["services"]["kafka-topics"]["command"][0]
    for svc in compose["services"].values():
        if svc.get("image") == "salespulse:local":
            assert svc["command"][0] in COMMANDS


def test_compose_prometheus_config_is_valid() -> None:
    result = promtool("check", "config", REPO / "deploy" / "compose" / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "config",
    ["alertmanager.yml", "examples/slack.yml", "examples/email.yml"],
)
def test_alertmanager_configs_are_valid(config: str) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool not found: run scripts/install-system-deps.sh")
    path = REPO / "deploy" / "alertmanager" / config
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_the_salespulse_cli() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert text.count("FROM python:3.11") == 2
    assert 'ENTRYPOINT ["salespulse"]' in text
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored
