"""deploy/: alert rules, dashboard, Prometheus, compose and Kubernetes files agree with the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from chainworker.config import Settings
from chainworker.jobs import exporter
from chainworker.obs import metrics
from tests.plugins import debian

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
TARGET_LABELS = frozenset({"job", "instance"})  # added by Prometheus to every scraped series
# Series Prometheus makes itself, used by the rules.
BUILTIN_SERIES = {"up": TARGET_LABELS}

_METRIC = re.compile(r"\b(chainworker_[a-z_]+|up)\b(?:\s*\{([^}]*)\})?")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
_AGGREGATION = re.compile(r"\b(?:sum|min|max|avg|count|stddev|absent)\s*\(")
_TEMPLATE_LABEL = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)|\{\{\s*([a-zA-Z_]\w*)\s*\}\}")


def _series() -> dict[str, frozenset[str]]:
    return {**metrics.exposed_series(), **BUILTIN_SERIES}


def _check_expr(expr: str, template_text: str = "") -> list[str]:
    """Problems in one PromQL expression: unknown series, labels the series do not have."""
    known = _series()
    problems: list[str] = []
    used: set[str] = set()
    matches = list(_METRIC.finditer(expr))
    if not matches:
        problems.append("no chainworker series in expression")
    for match in matches:
        name, matchers = match.group(1), match.group(2)
        if name not in known:
            problems.append(f"unknown series {name}")
            continue
        labels = known[name] | TARGET_LABELS
        used |= labels
        for label in _MATCHER_LABEL.findall(matchers or ""):
            if label not in labels:
                problems.append(f"{name} has no label {label}")
    grouped: set[str] = set()
    for group in _GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in group.split(","))):
            grouped.add(label)
            if label not in used:
                problems.append(f"grouping by {label}, which none of its series has")
    # Templated labels must survive the aggregation (or come from the series when none).
    aggregated = grouped or _AGGREGATION.search(expr)
    available = grouped if aggregated else used
    for first, second in _TEMPLATE_LABEL.findall(template_text):
        label = first or second
        if label not in available:
            problems.append(f"template uses {label}, which the expression does not keep")
    return problems


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _dashboard() -> dict[str, Any]:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "chainworker.json").read_text())


def _dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    return [
        (panel["title"], target)
        for panel in _dashboard()["panels"]
        for target in panel.get("targets", [])
    ]


def test_the_loose_promql_check_catches_mistakes() -> None:
    assert _check_expr("max(chainworker_tx_oldest_live_seconds) > 1") == []
    assert _check_expr("sum(chainworker_no_such_thing)") == [
        "unknown series chainworker_no_such_thing"
    ]
    assert _check_expr('chainworker_tx_live{op="mint"}') == ["chainworker_tx_live has no label op"]
    assert _check_expr("sum by (reason) (rate(chainworker_tx_expired_total[5m]))") == [
        "grouping by reason, which none of its series has"
    ]
    assert _check_expr("max(chainworker_tx_live)", "{{ $labels.status }}") == [
        "template uses status, which the expression does not keep"
    ]


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda rule: rule["alert"])
def test_every_alert_uses_real_metrics_and_labels(rule: dict[str, Any]) -> None:
    annotations = rule["annotations"]
    assert _check_expr(rule["expr"], " ".join(annotations.values())) == []
    assert {"summary", "description", "runbook"} <= set(annotations)
    assert rule["labels"]["severity"] in {"info", "warning", "critical"}


def test_every_runbook_says_what_to_run() -> None:
    for rule in _alert_rules():
        assert "`" in rule["annotations"]["runbook"] or "Restart" in rule["annotations"]["runbook"]


def test_alerts_cover_every_topic_the_on_call_needs() -> None:
    exprs = " ".join(rule["expr"] for rule in _alert_rules())
    for needed in (
        "chainworker_tx_oldest_live_seconds",
        "chainworker_tx_expired_total",
        "chainworker_tx_failed_total",
        "chainworker_rpc_errors_total",
        "chainworker_rpc_endpoint_up",
        "chainworker_queue_depth",
        'up{job="chainworker-worker"}',
        "chainworker_spend_limit_utilization_ratio",
        "chainworker_outbox_unprocessed",
        "chainworker_fee_payer_balance_lamports",
    ):
        assert needed in exprs, needed
    assert "chainworker reconcile --older-than 2m" in (PROMETHEUS / "alerts.yml").read_text()


@pytest.mark.parametrize(
    ("title", "target"), _dashboard_targets(), ids=lambda value: str(value)[:40]
)
def test_every_dashboard_query_uses_real_metrics_and_labels(
    title: str, target: dict[str, Any]
) -> None:
    assert _check_expr(target["expr"], target.get("legendFormat", "")) == [], title


def test_dashboard_shows_what_issue_six_lists() -> None:
    exprs = " ".join(target["expr"] for _, target in _dashboard_targets())
    for needed in (
        "chainworker_tx_confirmed_total",
        "histogram_quantile(0.99, sum by (le, op) (rate(chainworker_tx_confirmation_seconds_bucket",
        "chainworker_tx_live",
        "chainworker_tx_oldest_live_seconds",
        "chainworker_tx_retries_total",
        "chainworker_tx_expired_total",
        "chainworker_rpc_request_seconds_bucket",
        "chainworker_rpc_errors_total",
        "chainworker_queue_depth",
        "chainworker_fees_lamports_total",
        "chainworker_tx_landed_unit_price_microlamports_bucket",
        "chainworker_tx_fee_lamports_sum",
        "chainworker_fee_payer_balance_lamports",
    ):
        assert needed in exprs, needed
    ids = [panel["id"] for panel in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))


def test_grafana_provisioning_points_at_the_dashboard_and_the_datasource() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    used = {target["datasource"]["uid"] for _, target in _dashboard_targets()} | {
        panel["datasource"]["uid"] for panel in _dashboard()["panels"] if "datasource" in panel
    }
    assert used == {uid}
    provider = yaml.safe_load((provisioning / "dashboards" / "chainworker.yml").read_text())
    compose = _compose()
    mounts = compose["services"]["grafana"]["volumes"]
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{dashboards_path}:ro" in mounts


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return document


def test_prometheus_scrapes_the_compose_services_and_loads_the_rules() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: {t for static in job["static_configs"] for t in static["targets"]}
        for name, job in jobs.items()
    }
    assert targets["chainworker-api"] == {"api:8080"}
    assert targets["chainworker-worker"] == {"worker-1:9464", "worker-2:9464"}
    # chainworker_job_seconds has its own `job` label.
    assert jobs["chainworker-worker"]["honor_labels"] is True
    alert_jobs = set(re.findall(r'job="([^"]+)"', (PROMETHEUS / "alerts.yml").read_text()))
    assert alert_jobs <= set(jobs)


def test_compose_has_the_whole_stack() -> None:
    services = _compose()["services"]
    expected = {
        "postgres", "redis", "localnet", "migrate", "api", "worker-1", "worker-2",
        "prometheus", "grafana",
    }  # fmt: skip
    assert expected <= set(services)
    commands = {name: services[name].get("command") for name in services}
    assert commands["localnet"] == ["localnet", "--host", "0.0.0.0"]
    assert commands["migrate"] == ["migrate"]
    assert commands["api"][:3] == ["api", "--host", "0.0.0.0"]
    assert commands["worker-1"][0] == commands["worker-2"][0] == "worker"
    for name in ("migrate", "api", "worker-1", "worker-2"):
        env = services[name]["environment"]
        for key in ("DATABASE_URL", "DATABASE_ADMIN_URL", "REDIS_URL", "SOLANA_RPC_URLS"):
            assert env.get(key), f"{name} lacks {key}"
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for name in ("api", "worker-1", "worker-2"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    # The runtime role is not the owner (RLS must bind it).
    api_env = services["api"]["environment"]
    assert (
        api_env["DATABASE_URL"].split("//")[1].split(":")[0]
        != (api_env["DATABASE_ADMIN_URL"].split("//")[1].split(":")[0])
    )


_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def _interpolated(value: str) -> str:
    """A compose value as compose makes it with nothing set: `${VAR:-default}` is the default."""
    return _INTERPOLATION.sub(lambda match: match.group(2), value)


def test_compose_redis_requires_the_password_every_service_connects_with() -> None:
    services = _compose()["services"]
    redis = services["redis"]
    password = _interpolated(redis["environment"]["REDIS_PASSWORD"])
    assert password
    # `$$` reaches the container as `$`: its shell expands the variable, not compose.
    assert '--requirepass "$$REDIS_PASSWORD"' in " ".join(redis["command"])
    assert "$$REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])
    urls = {
        name: service["environment"]["REDIS_URL"]
        for name, service in services.items()
        if "REDIS_URL" in (service.get("environment") or {})
    }
    assert {"migrate", "api", "worker-1", "worker-2"} <= set(urls)
    for name, url in urls.items():
        parts = urlsplit(_interpolated(url))
        assert (parts.hostname, parts.password) == ("redis", password), name
        assert "${REDIS_PASSWORD" in url, f"{name}: the password is set in one place"


def _k8s_redis_urls(node: object) -> list[str]:
    """Every REDIS_URL a manifest sets: Secret or ConfigMap data, or a container's env."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("name") == "REDIS_URL" and isinstance(node.get("value"), str):
            found.append(node["value"])
        if isinstance(node.get("REDIS_URL"), str):
            found.append(node["REDIS_URL"])
        for value in node.values():
            found += _k8s_redis_urls(value)
    elif isinstance(node, list):
        for value in node:
            found += _k8s_redis_urls(value)
    return found


def test_k8s_connects_to_redis_with_credentials() -> None:
    documents = _k8s_documents()
    (secret,) = [d for d in documents if d["kind"] == "Secret"]
    assert "REDIS_URL" in secret["stringData"]
    urls = _k8s_redis_urls(documents)
    assert urls
    for url in urls:
        assert urlsplit(url).password, url
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert "REDIS_URL" not in config["data"], "the URL holds a password: the Secret's alone"


# What an operator pulls (or builds: chainworker:local) to run the compose stack.
COMPOSE_IMAGES = {
    "chainworker:local", "postgres:16-alpine", "redis:7-alpine", "prom/prometheus:v2.54.1",
    "grafana/grafana:11.2.0",
}  # fmt: skip


def _compose_command(implementation: str) -> list[str]:
    """The command of one compose implementation, or a skip saying why it is absent."""
    if implementation == "docker-compose":
        return [debian.binary_or_skip("docker-compose", "docker-compose",
                                      "compose file checked as YAML only")]
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed: compose file checked as YAML only")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip("the docker compose plugin is not installed: compose file checked as YAML only")
    return [docker, "compose"]


@pytest.mark.parametrize("implementation", ["docker-compose", "docker compose"])
def test_compose_passes_a_real_compose_config(implementation: str, tmp_path: Path) -> None:
    command = _compose_command(implementation)
    # A copy, with the env file an operator makes from the example (never in the checkout).
    repo = tmp_path / "repo"
    shutil.copytree(DEPLOY, repo / "deploy")
    shutil.copy(DEPLOY / "chainworker.env.example", repo / "deploy" / "chainworker.env")
    compose = [*command, "-p", "chainworker", "-f", "deploy/docker-compose.yml"]
    checked = subprocess.run([*compose, "config", "-q"], cwd=repo, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    resolved = subprocess.run([*compose, "config"], cwd=repo, capture_output=True, text=True,
                              timeout=60, check=True)
    images = {service["image"] for service in yaml.safe_load(resolved.stdout)["services"].values()}
    assert images == COMPOSE_IMAGES


def _promtool() -> str:
    return debian.binary_or_skip("prometheus", "promtool", "rules not checked")


@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_promtool_accepts_the_rules_config_and_unit_tests(args: list[str]) -> None:
    result = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _k8s_documents() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        documents.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return documents


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    manifests = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


def test_k8s_deployments_have_probes_resources_and_graceful_shutdown() -> None:
    documents = _k8s_documents()
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {"chainworker-api", "chainworker-worker"}
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 30, name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        (container,) = pod["containers"]
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["path"], (name, probe)
        assert container["resources"]["requests"] and container["resources"]["limits"], name
        assert container["lifecycle"]["preStop"], name
        sources = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert sources == {"chainworker-config", "chainworker-secrets"}, name
    api = deployments["chainworker-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    worker = deployments["chainworker-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker", "--metrics-port", "9464"]

    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert ("Job", "chainworker-migrate") in kinds
    assert ("ConfigMap", "chainworker-config") in kinds
    assert ("Secret", "chainworker-secrets") in kinds
    assert sum(kind == "Service" for kind, _ in kinds) == 2
    (job,) = [d for d in documents if d["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


# The oldest Kubernetes release still supported upstream when these manifests were checked,
# and the newest the validator knows: they must pass both.
K8S_VERSIONS = ("1.32.0", "1.37.0")


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_k8s_manifests_pass_the_kubernetes_schemas(version: str) -> None:
    documents = _k8s_documents()
    assert len(documents) >= 9
    for document in documents:
        # strict: a misspelt or misplaced field is an error, not silently dropped
        kubernetes_validate.validate(document, version, strict=True)


def test_k8s_validation_catches_a_misplaced_field() -> None:
    deployment = next(d for d in _k8s_documents() if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # not "resources"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)


def test_k8s_pods_run_locked_down_and_workers_have_a_disruption_budget() -> None:
    documents = _k8s_documents()
    pods = [d["spec"]["template"] for d in documents if d["kind"] in ("Deployment", "Job")]
    assert len(pods) == 3
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        assert pod["spec"]["securityContext"]["runAsUser"] != 0
        for container in pod["spec"]["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
    (budget,) = [d for d in documents if d["kind"] == "PodDisruptionBudget"]
    worker = next(d for d in documents
                  if d["kind"] == "Deployment" and d["metadata"]["name"] == "chainworker-worker")
    assert budget["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] < worker["spec"]["replicas"]


def test_the_image_builds_without_a_registry_or_buildkit() -> None:
    """No `# syntax=` line (BuildKit would pull its frontend from Docker Hub) and no
    heredoc (the legacy builder cannot parse one); the context leaves out local state."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert not re.search(r"^#\s*syntax=", text, re.M | re.I)
    assert "<<" not in text
    ignored = set((DEPLOY.parent / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".chainworker", "deploy/chainworker.env"} <= ignored


def test_dockerfile_is_multi_stage_non_root_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0"))
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    assert re.search(r'^ENTRYPOINT \["chainworker"\]', text, re.M)


class _Rpc(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = {"jsonrpc": "2.0", "id": body["id"], "result": "ok"}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def rpc_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Rpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _healthcheck(**env: str) -> int:
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "healthcheck.py")],
        env={**os.environ, **env},
        capture_output=True,
        timeout=20,
    )
    return result.returncode


def test_container_healthcheck_probes_http_and_jsonrpc(rpc_url: str) -> None:
    server = exporter.start_metrics_server(0, addr="127.0.0.1")
    try:
        assert _healthcheck(HEALTHCHECK_URL=f"http://127.0.0.1:{server.port}/metrics") == 0
    finally:
        server.close()
    assert _healthcheck(HEALTHCHECK_URL=f"http://127.0.0.1:{server.port}/metrics") == 1
    assert _healthcheck(HEALTHCHECK_URL=rpc_url, HEALTHCHECK_JSONRPC="1") == 0
    assert _healthcheck(HEALTHCHECK_URL="") == 0
    assert _healthcheck(HEALTHCHECK_URL="file:///etc/passwd") == 1


def test_worker_metrics_listen_on_all_addresses_only_where_prometheus_scrapes() -> None:
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"
    services = _compose()["services"]
    scraped = {
        target
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name in ("worker-1", "worker-2"):
        assert services[name]["environment"]["METRICS_HOST"] == "0.0.0.0", name
        command = services[name]["command"]
        assert f"{name}:{command[command.index('--metrics-port') + 1]}" in scraped
    for name in ("api", "migrate", "localnet"):
        assert "METRICS_HOST" not in services[name]["environment"], name
    deployments = {d["metadata"]["name"]: d for d in _k8s_documents() if d["kind"] == "Deployment"}
    (worker,) = deployments["chainworker-worker"]["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item.get("value") for item in worker.get("env", [])}
    # The kubelet's probes and Prometheus reach the pod IP, not its loopback.
    assert env["METRICS_HOST"] == "0.0.0.0"
    assert worker["livenessProbe"]["httpGet"]["port"] == "metrics"
    (api,) = deployments["chainworker-api"]["spec"]["template"]["spec"]["containers"]
    assert "METRICS_HOST" not in {item["name"] for item in api.get("env", [])}
