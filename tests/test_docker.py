"""docker/: the compose file never publishes the unauthenticated MLflow server beyond this host unless told to, and
the KubeRay manifest runs the image the Dockerfile builds with MLflow and one shared volume for study state."""

from __future__ import annotations

import os
import re
from typing import Any

from conftest import REPO
from ruamel.yaml import YAML

DOCKER = REPO / "docker"


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable substitution for ``${VAR}`` and ``${VAR:-default}`` (unset or empty -> default)."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), text)


def _compose(env: dict[str, str]) -> dict[str, Any]:
    return YAML(typ="safe").load(_interpolate((DOCKER / "compose.yaml").read_text(), env))


def _built_image() -> str:
    """The tag docker/Dockerfile's build line gives the image (``docker build -f docker/Dockerfile -t TAG .``)."""
    (tag,) = re.findall(r"docker build -f docker/Dockerfile -t (\S+)", (DOCKER / "Dockerfile").read_text())
    return tag


def test_published_ports_bind_to_loopback_unless_told_otherwise() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_PUBLISH_HOST"}
    published = [p for s in _compose(env)["services"].values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
    told = [p for s in _compose({"MLFLOW_PUBLISH_HOST": "10.0.0.7"})["services"].values() for p in s.get("ports", [])]
    assert told == [p.replace("127.0.0.1:", "10.0.0.7:", 1) for p in published]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if doc["kind"] == "RayCluster":
        groups = [doc["spec"]["headGroupSpec"], *doc["spec"]["workerGroupSpecs"]]
        return [c for g in groups for c in g["template"]["spec"]["containers"]]
    if doc["kind"] == "Deployment":
        return doc["spec"]["template"]["spec"]["containers"]
    return []


def test_kuberay_manifest_runs_the_built_image_with_mlflow_and_shared_storage() -> None:
    docs = list(YAML(typ="safe").load_all((DOCKER / "kuberay.yaml").read_text()))
    by_kind = {d["kind"]: d for d in docs}
    assert {"RayCluster", "PersistentVolumeClaim", "Service", "Deployment"} <= set(by_kind)
    image = _built_image()
    containers = [c for d in docs for c in _containers(d)]
    assert len(containers) >= 3 and {c["image"] for c in containers} == {image}
    assert {s["image"] for s in _compose({})["services"].values()} == {image}  # compose runs the same image

    pvc = by_kind["PersistentVolumeClaim"]
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]  # mounted by every node at once
    service = by_kind["Service"]
    assert service["spec"]["type"] == "ClusterIP"  # the unauthenticated MLflow server stays inside the cluster
    uri = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    ray = by_kind["RayCluster"]
    groups = [ray["spec"]["headGroupSpec"], *ray["spec"]["workerGroupSpecs"]]
    assert any(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu") for g in groups)
    for group in groups:
        pod = group["template"]["spec"]
        claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
                  if "persistentVolumeClaim" in v}  # fmt: skip
        for c in pod["containers"]:
            assert {"name": "MLFLOW_TRACKING_URI", "value": uri} in c["env"]
            studies = [m for m in c["volumeMounts"] if m["mountPath"] == "/study/studies"]
            assert [claims.get(m["name"]) for m in studies] == [pvc["metadata"]["name"]]
