"""The Grafana dashboard and the Prometheus alert rules in deploy/ use only metrics the service exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
ALERTS = DEPLOY / "prometheus-alerts.yml"
METRIC_NAME = re.compile(r"\b((?:infoscreen|process|python)_[a-z0-9_]+)\b")
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",), "info": ("_info",)}


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    expressions += [str(variable.get("definition", "")) for variable in dashboard["templating"]["list"]]
    return expressions


def alert_expressions() -> list[str]:
    rules = YAML(typ="safe").load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


async def exposed_series_names(http: httpx.AsyncClient) -> set[str]:
    """Every series name a scrape can hold: family names with their type's suffixes."""
    response = await http.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


class TestDeployFiles:
    async def test_dashboard_and_alerts_use_only_exposed_metrics(self, client: httpx.AsyncClient) -> None:
        exposed = await exposed_series_names(client)
        dashboard = dashboard_expressions()
        alerts = alert_expressions()
        assert len(dashboard) >= 15
        assert len(alerts) >= 4
        for expression in dashboard + alerts:
            for name in METRIC_NAME.findall(expression):
                assert name in exposed, (name, expression)

    def test_alerts_cover_stalled_ingest_growing_lag_and_database_errors(self) -> None:
        joined = "\n".join(alert_expressions())
        for metric in ("infoscreen_ingest_buffer_depth", "infoscreen_ingest_lag_seconds", "infoscreen_database_errors"):
            assert metric in joined

    def test_promtool_accepts_the_rules_and_their_unit_tests_pass(self) -> None:
        promtool = shutil.which("promtool")
        if promtool is None:
            pytest.skip("promtool (Prometheus) is not installed")
        for arguments in (["check", "rules", ALERTS.name], ["test", "rules", "prometheus-alerts.test.yml"]):
            result = subprocess.run(
                [promtool, *arguments], cwd=DEPLOY, capture_output=True, text=True, timeout=60, check=False
            )
            assert result.returncode == 0, result.stdout + result.stderr
