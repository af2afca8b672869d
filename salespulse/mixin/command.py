"""``salespulse generate``: write every derived artifact from the KPI declarations and targets.

>>> sorted(generated_files(Path("deploy/targets.yaml")))[:2]
['deploy/grafana/dashboards/executive.json', 'deploy/grafana/dashboards/manager.json']
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import click
import yaml

from salespulse.mixin.dashboards import dashboards
from salespulse.mixin.kubernetes import dashboard_configmaps, prometheus_rule, targets_configmap
from salespulse.mixin.render import GENERATED, dump_json, yaml_file
from salespulse.mixin.rule_tests import rule_test_texts
from salespulse.mixin.rules import rule_groups, rules_file
from salespulse.mixin.targets import DEFAULT_TARGETS, Targets

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = "deploy/grafana/dashboards"
RULES_FILE = "deploy/prometheus/rules/salespulse.rules.yml"
RULE_TESTS_DIR = "deploy/prometheus/rules/tests"
K8S_DIR = "deploy/kubernetes/generated"
KPIS_DOC = "docs/kpis.md"


def generated_files(targets_path: Path) -> dict[str, str]:
    """Relative path -> text of every file the mixin generates (docs/kpis.md aside)."""
    text = targets_path.read_text()
    targets = Targets.model_validate(yaml.safe_load(text) or {})
    boards = dashboards(targets)
    k8s_header = f"{GENERATED}\nDo not edit: run `salespulse generate`."
    files = {f"{DASHBOARDS_DIR}/{name}.json": dump_json(model) for name, model in boards.items()}
    files[RULES_FILE] = rules_file(targets)
    files.update({f"{RULE_TESTS_DIR}/{n}": t for n, t in rule_test_texts(targets).items()})
    files[f"{K8S_DIR}/prometheusrule.yaml"] = yaml_file(
        [prometheus_rule(rule_groups(targets))], k8s_header
    )
    files[f"{K8S_DIR}/grafana-dashboards.yaml"] = yaml_file(
        dashboard_configmaps(boards), k8s_header
    )
    files[f"{K8S_DIR}/targets-configmap.yaml"] = yaml_file([targets_configmap(text)], k8s_header)
    return dict(sorted(files.items()))


def write_kpis_doc(out: Path) -> bool:
    """``docs/kpis.md`` through ``salespulse.docs_gen`` when that module exists."""
    try:
        docs_gen = importlib.import_module("salespulse.docs_gen")
    except ModuleNotFoundError:
        log.warning("salespulse.docs_gen not found: %s not written", KPIS_DOC)
        return False
    docs_gen.write_kpis_md(str(out / KPIS_DOC))
    return True


def write_all(out: Path, targets_path: Path) -> list[str]:
    """Write every generated file under ``out``; return the paths that changed."""
    changed = []
    for rel, text in generated_files(targets_path).items():
        path = out / rel
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        changed.append(rel)
    (out / KPIS_DOC).parent.mkdir(parents=True, exist_ok=True)
    write_kpis_doc(out)
    return changed


@click.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=REPO,
    show_default=True,
    help="Repository root to write into.",
)
@click.option(
    "--targets",
    "targets_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_TARGETS,
    show_default=True,
    envvar="SALESPULSE_TARGETS",
    help="The targets and thresholds file.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if a file is out of date.")
def generate_command(out: Path, targets_path: Path, check: bool) -> None:
    """Write dashboards, rules, rule tests and Kubernetes objects from KPIs and targets."""
    if check:
        stale = [
            rel
            for rel, text in generated_files(targets_path).items()
            if not (out / rel).exists() or (out / rel).read_text() != text
        ]
        if stale:
            raise click.ClickException("out of date (run salespulse generate): " + ", ".join(stale))
        click.echo("generated files are up to date")
        return
    changed = write_all(out, targets_path)
    click.echo(f"{len(changed)} file(s) updated" + (": " + ", ".join(changed) if changed else ""))
