"""The Kubernetes manifests, rendered by kubectl's kustomize and checked by real tools.

Each overlay in k8s/overlays is rendered with `kubectl kustomize` and validated against the
Kubernetes API schemas with `kubernetes-validate --strict`; the containers' commands and
environment are compared with docker-compose.yml's services (whose commands
tests/deploy/test_compose.py runs); and the worker's memory is compared with the pre-flight
estimate of the study's largest config.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, require_or_skip

OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir() if p.is_dir())
IMAGE_UID = 10001
# compose service -> (overlay, kind, name) of the Kubernetes workload running the same command
COMPOSE_TO_K8S = {
    "init": ("cpu", "Job", "create-study"),
    "worker": ("cpu", "Job", "worker"),
    "worker-gpu": ("gpu", "Job", "worker"),
    "dashboard": ("cpu", "Deployment", "dashboard"),
    "storage-proxy": ("proxy", "Deployment", "storage-proxy"),
}
_COMPOSE_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _kubectl() -> str:
    binary = shutil.which("kubectl")
    if binary is None:
        require_or_skip("kubectl is not installed (it renders the kustomize overlays)")
        raise AssertionError("unreachable")
    return binary


_rendered: dict[str, str] = {}


def _render_text(overlay: str) -> str:
    if overlay not in _rendered:
        result = subprocess.run(
            [_kubectl(), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        _rendered[overlay] = result.stdout
    return _rendered[overlay]


def _render(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(_render_text(overlay)) if doc]


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: found {len(found)}"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in ("Job", "Deployment", "StatefulSet")
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_against_the_kubernetes_schemas(
    overlay: str, tmp_path: Path
) -> None:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(_render_text(overlay))
    validator = Path(sys.executable).parent / "kubernetes-validate"
    if not validator.exists():
        require_or_skip("kubernetes-validate is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [str(validator), "--strict", str(rendered)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count(" passed for resource ")
    assert passed == len(_render(overlay)) >= 8, result.stdout


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _as_k8s(value: Any) -> str:
    """A compose value with ${VAR:-default} / ${VAR:?message} written as Kubernetes' $(VAR)."""
    return _COMPOSE_VAR.sub(lambda m: f"$({m.group(1)})", str(value))


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_each_container_runs_its_compose_service_command_and_environment() -> None:
    compose = _compose()["services"]
    for service, (overlay, kind, name) in COMPOSE_TO_K8S.items():
        spec = _find(_render(overlay), kind, name)["spec"]["template"]["spec"]
        [container] = spec["containers"]
        where = f"{overlay}: {kind}/{name} vs compose {service}"
        assert container["args"] == [_as_k8s(part) for part in compose[service]["command"]], where
        env = _env(container)
        for key, value in compose[service]["environment"].items():
            if str(value).startswith(f"${{{key}:-"):
                # Passed through from the user's environment in compose; from the study's
                # ConfigMap (its default there) in Kubernetes.
                ref = (env.get(key) or {}).get("configMapKeyRef", {})
                assert ref == {"name": "lstm-tune-study", "key": key}, f"{where}: {key}"
                continue
            assert env.get(key) == _as_k8s(value), f"{where}: {key}"
        # Kubernetes expands $(VAR) only from variables defined before (env order matters).
        defined: set[str] = set()
        for item in container["env"]:
            for used in re.findall(r"\$\((\w+)\)", str(item.get("value", ""))):
                assert used in defined, f"{where}: {item['name']} uses $({used}) before it is set"
            defined.add(item["name"])
        for part in container["args"]:
            for used in re.findall(r"\$\((\w+)\)", part):
                assert used in defined, f"{where}: args use $({used}), which is not set"
        image = compose[service]["image"]
        assert container["image"] == image, where


def test_study_settings_default_to_the_compose_defaults() -> None:
    defaults = {}
    for match in _COMPOSE_VAR.finditer((ROOT / "docker-compose.yml").read_text()):
        if match.group(1).startswith("LSTM_TUNE_") and match.group(2) is not None:
            defaults[match.group(1)] = match.group(2)
    config = _find(_render("cpu"), "ConfigMap", "lstm-tune-study")["data"]
    assert set(defaults) <= set(config)
    assert {key: config[key] for key in defaults} == defaults


def test_proxy_overlay_points_workers_at_the_proxy_service() -> None:
    docs = _render("proxy")
    worker = _find(docs, "Job", "worker")["spec"]["template"]["spec"]["containers"][0]
    url = _env(worker)["LSTM_TUNE_STORAGE"]
    service = _find(docs, "Service", "storage-proxy")
    proxy = _find(docs, "Deployment", "storage-proxy")["spec"]["template"]["spec"]
    args = proxy["containers"][0]["args"]
    port = service["spec"]["ports"][0]["port"]
    assert url.startswith(f"grpc://storage-proxy:{port}?")
    assert args[args.index("--port") + 1] == str(port)
    from lstm_tune.storages import parse_url

    assert parse_url(url).options.heartbeat_interval == 10  # the URL is one lstm-tune accepts


def test_pods_run_unprivileged_and_nothing_is_exposed() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert f"--uid {IMAGE_UID}" in dockerfile
    for overlay in OVERLAYS:
        docs = _render(overlay)
        assert not [d for d in docs if d["kind"] == "Secret"]  # created by hand, never here
        assert "password:" not in _render_text(overlay).replace("key: password", "")
        for d in docs:
            if d["kind"] == "Service":
                assert d["spec"].get("type", "ClusterIP") == "ClusterIP", d["metadata"]["name"]
        for where, pod in _pod_specs(docs):
            context = pod["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert not pod.get("hostNetwork") and not pod.get("hostPID"), where
            for container in pod["containers"]:
                if container["image"].startswith("lstm-tune:"):
                    assert context["runAsUser"] == IMAGE_UID, where
                sc = container["securityContext"]
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["capabilities"]["drop"] == ["ALL"], where
                assert sc["readOnlyRootFilesystem"] is True, where
                assert "memory" in container["resources"]["limits"], where
                assert all("hostPort" not in p for p in container.get("ports", [])), where


def test_worker_job_finishes_when_its_pods_exit_0_at_the_budget() -> None:
    compose = _compose()["services"]
    docs = _render("cpu")
    job = _find(docs, "Job", "worker")["spec"]
    assert job["parallelism"] == compose["worker"]["deploy"]["replicas"]
    assert "completions" not in job  # work queue: one pod exiting 0 means the work is done
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert job["backoffLimit"] >= 1
    postgres = _find(docs, "StatefulSet", "postgres")["spec"]
    assert postgres["volumeClaimTemplates"][0]["metadata"]["name"] == "pgdata"
    pg_env = _env(postgres["template"]["spec"]["containers"][0])
    assert pg_env["POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "lstm-tune-postgres", "key": "password"}
    }
    gpu = _find(_render("gpu"), "Job", "worker")["spec"]["template"]["spec"]["containers"][0]
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu["image"] == compose["worker-gpu"]["image"] == "lstm-tune:gpu"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_pod_that_exits_2_fails_its_job_and_other_failures_are_retried(overlay: str) -> None:
    from lstm_tune.cli.command import EXIT_USAGE

    docs = _render(overlay)
    for name, container in (("worker", "worker"), ("create-study", "create-study")):
        job = _find(docs, "Job", name)["spec"]
        # podFailurePolicy holds only with restartPolicy Never (a pod, not its container,
        # fails), and the exit code must be the one the CLI gives an input error.
        assert job["template"]["spec"]["restartPolicy"] == "Never", name
        assert {"action": "FailJob", "onExitCodes": {
            "containerName": container, "operator": "In", "values": [EXIT_USAGE]
        }} in job["podFailurePolicy"]["rules"], name  # fmt: skip
        assert job["backoffLimit"] >= 1, name  # a crash (exit 1, 3, 4, 137) gets a new pod


def test_worker_memory_is_sized_from_the_largest_configs_estimate(shared_data: Path) -> None:
    from lstm_tune.cli.env import default_cache_dir
    from lstm_tune.config import load_spec, with_data
    from lstm_tune.runtime.sizing import study_size
    from lstm_tune.tasks import get_task

    docs = _render("cpu")
    config = _find(docs, "ConfigMap", "lstm-tune-study")["data"]
    spec = load_spec(ROOT / config["LSTM_TUNE_STUDY_FILE"])
    spec = with_data(spec, source="csv", path=str(shared_data), cache_dir=default_cache_dir())
    size = study_size(spec, get_task(spec.task).load(spec.data, spec.seed))
    worker = _find(docs, "Job", "worker")["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["requests"]["memory"] == f"{size.request_mib}Mi"
    assert worker["resources"]["limits"]["memory"] == f"{size.limit_mib}Mi"
    comment = (ROOT / "k8s" / "base" / "worker-job.yaml").read_text()
    assert f"estimated peak memory: {size.estimate_mib:,.0f} MiB" in comment
