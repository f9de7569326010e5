"""deploy/kubernetes/ and the Containerfile: the manifests validate against the Kubernetes API schemas (strict: an
unknown field is an error) of a pinned Kubernetes version, and they fit together and fit the app: selectors match
the pods, the settings are ones the app accepts in production, the grace period covers the drain, the rolling
update never drops capacity, the pod's nginx config is one nginx accepts."""

from __future__ import annotations

import copy
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from app.settings import Settings
from fleet import kubernetes
from fleet.config import ROOT, nginx_binary

MANIFESTS = ROOT / "deploy" / "kubernetes"
# The Kubernetes version the manifests are written for; kubernetes-validate (pinned in requirements-dev.txt) ships
# its schemas. Raise both together.
KUBERNETES_VERSION = "1.34.0"
LABEL = {"app.kubernetes.io/name": "tornado-fleet"}


def load_all() -> dict[str, dict]:
    resources = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                resources[doc["kind"]] = doc
    return resources


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    return load_all()


def pod_spec(resources) -> dict:
    return resources["Deployment"]["spec"]["template"]["spec"]


def containers(resources) -> dict[str, dict]:
    return {c["name"]: c for c in pod_spec(resources)["containers"]}


def test_every_manifest_validates_strictly_against_the_pinned_kubernetes_version(resources):
    assert set(resources) == {"ConfigMap", "Deployment", "Service", "Ingress", "PodDisruptionBudget"}
    for kind, resource in resources.items():
        # Raises ValidationError (and SchemaNotFoundError for an unknown kind or apiVersion).
        assert kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True), kind


def test_the_validation_is_strict_a_misspelt_field_is_refused(resources):
    deployment = copy.deepcopy(resources["Deployment"])
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 30
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_selectors_and_ports_join_up(resources):
    deployment = resources["Deployment"]
    assert deployment["spec"]["selector"]["matchLabels"] == LABEL
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= LABEL.items()
    assert resources["Service"]["spec"]["selector"] == LABEL
    assert resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == LABEL
    port_names = {p["name"] for c in containers(resources).values() for p in c.get("ports", [])}
    assert resources["Service"]["spec"]["ports"][0]["targetPort"] in port_names
    backend = resources["Ingress"]["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == resources["Service"]["metadata"]["name"]
    assert backend["port"]["name"] == resources["Service"]["spec"]["ports"][0]["name"]


def test_the_configmap_and_secret_give_settings_the_app_accepts_in_production(resources):
    env = dict(resources["ConfigMap"]["data"])
    app = containers(resources)["app"]
    from_secret = {e["name"] for e in app["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert from_secret == {"MONGODB_URI", "FLEET_SECRET_KEY"}
    assert not from_secret & set(env), "a secret is also in the ConfigMap"
    settings = Settings.from_mapping(
        {**env, "MONGODB_URI": "mongodb://db-0,db-1,db-2/?replicaSet=rs0", "FLEET_SECRET_KEY": "k" * 43}
    )
    assert settings.env == "production"
    assert settings.db_mode in ("motor", "threads", "async")
    assert app["command"][-2:] == ["--port", str(kubernetes.APP_PORT)]


def test_the_grace_period_covers_the_pause_and_the_drain_and_rollouts_keep_capacity(resources):
    env = resources["ConfigMap"]["data"]
    drain = float(env["FLEET_DRAIN_SECONDS"])
    assert drain <= 25
    app = containers(resources)["app"]
    pause = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod_spec(resources)["terminationGracePeriodSeconds"] >= pause + drain + 5
    rolling = resources["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] >= 1
    assert resources["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1


def test_probes_resources_and_security_context(resources):
    spec = pod_spec(resources)
    assert spec["securityContext"]["runAsNonRoot"] is True
    nginx, app = containers(resources)["nginx"], containers(resources)["app"]
    assert nginx["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "/healthz" in " ".join(app["livenessProbe"]["exec"]["command"])
    for container in (app, nginx):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert container["image"] == app["image"]
    containerfile = (ROOT / "Containerfile").read_text()
    assert f"USER {spec['securityContext']['runAsUser']}:" in containerfile


def test_the_pods_nginx_config_is_accepted_by_nginx(tmp_path):
    conf = kubernetes.render_pod_nginx(kubernetes.trusted_proxies("10.0.0.0/8, 192.168.0.0/16"))
    assert f"server 127.0.0.1:{kubernetes.APP_PORT} " in conf
    assert "set_real_ip_from 192.168.0.0/16;" in conf
    # What the nginx container makes before it starts nginx (deployment.yaml).
    (tmp_path / "logs").mkdir()
    (tmp_path / "tmp").mkdir()
    (tmp_path / "nginx.conf").write_text(conf)
    check = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    with pytest.raises(ValueError, match="FLEET_TRUSTED_PROXIES"):
        kubernetes.trusted_proxies("10.0.0.0/8, nonsense")


def container_engine() -> str | None:
    """A container engine that can build here: podman, or docker with a daemon that answers."""
    for engine in ("podman", "docker"):
        if shutil.which(engine):
            info = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30)
            if info.returncode == 0:
                return engine
    return None


def test_the_image_builds_and_its_app_imports_on_a_read_only_root():
    engine = container_engine()
    if engine is None:
        pytest.skip("no container engine that answers here (no podman; docker's client has no daemon)")
    base = "docker.io/library/python:3.11-slim-bookworm"
    present = subprocess.run([engine, "image", "inspect", base], capture_output=True, timeout=30)
    if present.returncode != 0:
        pytest.skip(f"the base image {base} is not present locally, and no image registry can be reached from here")
    tag = "tornado-fleet:test"
    build = subprocess.run(
        [engine, "build", "-t", tag, "-f", "Containerfile", "."], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(
        [engine, "run", "--rm", "--read-only", "--tmpfs", "/tmp", tag, "python", "-c", "import app.server"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
