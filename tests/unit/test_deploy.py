"""The deployment files: parsed and checked against the CLI and the typed config.

No Docker engine or cluster runs here, so the compose file and the manifests
are validated, not run: every command must be one the `nexus` CLI accepts,
every NEXUS_* variable must pass the config's validation, every service must
be hosted exactly once, and ports must line up.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from nexus.cli import _parser
from nexus.config import ServiceName, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _check_invocation(args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    parsed = _parser().parse_args(args)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    overrides = {"services": parsed.services} if getattr(parsed, "services", None) else None
    settings = load_settings(overrides=overrides)
    for key in env:
        monkeypatch.delenv(key)
    return parsed, settings


def test_compose_services_are_valid_invocations(monkeypatch: pytest.MonkeyPatch) -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    hosted: Counter[str] = Counter()
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        if service.get("image", "").startswith("nexus:"):
            parsed, settings = _check_invocation(
                service["command"], service.get("environment", {}), monkeypatch
            )
            assert settings.topology == "distributed"
            if parsed.command == "serve":
                hosted.update(s.value for s in settings.services)
            else:
                host, port = parsed.target.split(":")
                assert host in services, f"gateway targets unknown service {host}"
                assert int(port) == 50051
    assert hosted == Counter(s.value for s in ServiceName)
    for secret in compose.get("secrets", {}).values():
        assert "secrets/" in secret["file"], "secrets come from files, never inline"


def test_kubernetes_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "k8s" / "nexus.yaml").read_text()) if d]
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys()
        assert doc["metadata"]["name"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    hosted: Counter[str] = Counter()
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        labels = spec["template"]["metadata"]["labels"]
        assert spec["selector"]["matchLabels"].items() <= labels.items()
        (container,) = spec["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container.get("env", [])}
        parsed, settings = _check_invocation(container["args"], env, monkeypatch)
        port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
        if parsed.command == "serve":
            hosted.update(s.value for s in settings.services)
            assert port_names["grpc"] == settings.server.port
            assert port_names["metrics"] == settings.server.metrics_port
            annotations = spec["template"]["metadata"]["annotations"]
            assert int(annotations["prometheus.io/port"]) == settings.server.metrics_port
            assert container["readinessProbe"]["grpc"]["port"] == settings.server.port
        else:
            assert port_names["http"] == parsed.port
            assert parsed.target.split(":")[0] in services
        service = services[name]
        assert service["spec"]["selector"].items() <= labels.items()
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
    assert hosted == Counter(s.value for s in ServiceName)


def test_prometheus_scrapes_every_compose_service() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    targets = {t.split(":")[0] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {s.value for s in ServiceName}
    assert targets <= set(compose["services"])
    ports = {int(t.split(":")[1]) for c in job["static_configs"] for t in c["targets"]}
    assert ports == {load_settings().server.metrics_port}
