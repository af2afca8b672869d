"""``python -m bench.run`` (``make bench``): the whole benchmark in one command.

Brings up the bench stack (Kafka and Redis in ``.salespulse-bench/``, ports 29392 and
26679), runs every phase, writes ``bench/results/<timestamp>.json`` and regenerates
``BENCHMARKS.md`` from it. See ``bench/README.md`` for what is measured and how.

    python -m bench.run --quick                      # 10^5 entities, a few minutes
    python -m bench.run                              # 10^6 entities + scaling to 10^7
    python -m bench.run --render bench/results/X.json   # only regenerate BENCHMARKS.md
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson

from bench import markdown, phases, report
from bench.config import REPO, bench_settings, fresh_stack, stop_stack
from bench.phases import Plan
from salespulse.config import Settings

RESULTS = Path(__file__).with_name("results")
log = logging.getLogger("bench")


def run_benchmark(base: Settings, plan: Plan, tag: str, command: str) -> dict[str, Any]:
    """Run the phases of ``plan`` on a running stack; the result document."""
    started = time.time()
    result: dict[str, Any] = {
        "schema": 1,
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "mode": plan.mode,
        "machine": report.machine(base),
        "settings": {
            "workers": 1,
            "partitions": base.partitions,
            "publish_interval_s": base.publish_interval_s,
            "quix_commit_interval_s": plan.quix_commit_interval,
            "record_batch_events": 500,
        },
        "plan": {k: v for k, v in vars(plan).items() if k not in ("skip", "profile_dir")},
        "workload": {},
        "throughput": {},
        "figures_check": {},
        "latency": [],
        "recovery": {},
        "scaling": [],
    }
    log.info("main comparison: %d entities", plan.entities)
    phases.main_comparison(base, plan, tag, result)
    if "latency" not in plan.skip:
        log.info("latency at %s events/s", plan.rates)
        result["latency"] = phases.latency_phase(base, plan, tag)
    if "scaling" not in plan.skip:
        log.info("scaling: %s entities", plan.scale)
        result["scaling"] = phases.scaling_phase(base, plan, tag, result)
    result["ratios"] = report.ratios(result["throughput"])
    result["targets"] = report.targets(result)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.time() - started, 1)
    return result


def save(result: dict[str, Any], results_dir: Path, markdown_path: Path | None) -> Path:
    """Write the JSON document (and BENCHMARKS.md from it); the JSON's path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = result["started_at"].replace("-", "").replace(":", "")
    path = results_dir / f"{stamp}.json"
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if markdown_path is not None:
        markdown_path.write_text(markdown.render(result, path.name))
    return path


def make_plan(quick: bool, **given: Any) -> Plan:
    """Defaults of the full run (or ``--quick``), overridden by the given options."""
    entities = given.get("entities") or (100_000 if quick else 1_000_000)
    scale = given.get("scale")
    return Plan(
        mode="quick" if quick else "full",
        entities=entities,
        events=given.get("events"),
        scale=scale if scale is not None else ([entities] if quick else [10**5, 10**6, 10**7]),
        rates=given.get("rates") or [1_000, 10_000],
        latency_s=given.get("latency_seconds") or (10.0 if quick else 30.0),
        obvious_events=given.get("obvious_events") or (20_000 if quick else 50_000),
        time_cap=given.get("time_cap") or (600.0 if quick else 900.0),
        scale_time_cap=given.get("scale_time_cap") or 300.0,
        recovery_time_cap=given.get("recovery_time_cap") or 300.0,
        quix_commit_interval=given.get("quix_commit_interval") or 1.0,
        seed=given.get("seed") or 1,
        skip=set(given.get("skip") or ()),
        profile_dir=given.get("profile_dir"),
    )


def _ints(text: str | None) -> list[int] | None:
    return None if not text else [int(float(x)) for x in text.split(",") if x]


@click.command()
@click.option("--quick", is_flag=True, help="10^5 entities, no larger scaling runs.")
@click.option("--entities", type=int, help="Entities of the main run [10^6; quick 10^5].")
@click.option("--events", type=int, help="Events of the main run [~1.9 per entity].")
@click.option("--scale", help="Entity counts of the scaling runs [1e5,1e6,1e7].")
@click.option("--rates", help="Offered rates of the latency runs [1000,10000].")
@click.option("--latency-seconds", type=float, help="Seconds per latency run [30; quick 10].")
@click.option("--obvious-events", type=int, help="Events for obvious Faust [50000; 20000].")
@click.option("--time-cap", type=float, help="Max seconds per system run [900; quick 600].")
@click.option("--scale-time-cap", type=float, help="Max seconds per scaling run [300].")
@click.option("--recovery-time-cap", type=float, help="Max seconds per recovery [300].")
@click.option("--quix-commit-interval", type=float, help="Quix checkpoint interval [1.0].")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--skip", help="Comma list of: raw,quix,obvious,recovery,latency,scaling.")
@click.option("--profile", is_flag=True, help="py-spy the worker (main, scaling runs).")
@click.option("--keep-stack", is_flag=True, help="Leave the bench stack running.")
@click.option("--render", type=click.Path(exists=True), help="Only render BENCHMARKS.md.")
def main(render: str | None, keep_stack: bool, profile: bool, **options: Any) -> None:
    """Benchmark SalesPulse against raw aiokafka, obvious Faust and Quix Streams."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    markdown_path = REPO / "BENCHMARKS.md"
    if render:
        path = Path(render)
        markdown_path.write_text(markdown.render(orjson.loads(path.read_bytes()), path.name))
        click.echo(f"wrote {markdown_path}")
        return
    options["scale"] = _ints(options.get("scale"))
    options["rates"] = _ints(options.get("rates"))
    options["skip"] = (options.get("skip") or "").split(",")
    tag = datetime.now(UTC).strftime("%H%M%S")
    options["profile_dir"] = RESULTS if profile else None
    plan = make_plan(options.pop("quick"), **options)
    settings = bench_settings()
    fresh_stack(settings)
    try:
        result = run_benchmark(settings, plan, tag, "python -m bench.run " + " ".join(sys.argv[1:]))
    finally:
        if not keep_stack:
            stop_stack(settings)
    path = save(result, RESULTS, markdown_path)
    click.echo(f"wrote {path} and {markdown_path}")
    for name, x in result["throughput"].items():
        click.echo(f"{name:>22}: {x.get('events_per_s'):>12} events/s")


if __name__ == "__main__":
    main()
