"""The multi-node path on one machine: a Ray cluster of a CPU-less head and two 1-CPU worker nodes
(``ray.cluster_utils.Cluster``), a real ``mlflow server``, and a study whose trials must land on different nodes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import micro_spec, serve_mlflow, write_spec

from study.cluster import check_cluster
from study.contract import keys
from study.contract.spec import StudySpec, load_study
from study.runner import RAY_ENV, run_study

pytestmark = pytest.mark.integration

WORKERS = 2
OBJECT_STORE = 80 * 2**20  # Ray's minimum is 75 MiB; the default (30% of RAM per node) is wasteful here


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """Head with 0 CPUs (so no trial runs there) and ``WORKERS`` nodes with 1 CPU each: a 1-CPU trial fills a node,
    so two concurrent trials cannot share one."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False, "object_store_memory": OBJECT_STORE},
    )
    try:
        for _ in range(WORKERS):
            c.add_node(num_cpus=1, object_store_memory=OBJECT_STORE)
        c.wait_for_nodes()
        yield c
    finally:
        c.shutdown()


def _rest(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def _history(base: str, run_id: str, key: str) -> list[int]:
    query = urllib.parse.urlencode({"run_id": run_id, "metric_key": key, "max_results": 25000})
    return sorted(m["step"] for m in _rest(base, f"/api/2.0/mlflow/metrics/get-history?{query}").get("metrics", []))


@pytest.mark.slow
def test_trials_land_on_different_nodes_and_every_point_reaches_the_server(
    cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
            str(tmp_path / "server-artifacts")]  # fmt: skip
    epochs = 2
    spec = micro_spec(
        "multinode",
        **{"training.epochs": epochs, "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
           "tracking.log_images": False},
    )  # fmt: skip
    with serve_mlflow("server", args) as base:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", base)
        outcome = run_study(
            write_spec(tmp_path / "m.yaml", spec), address=cluster.address, storage=tmp_path / "studies",
            write_report=False,
        )  # fmt: skip
        assert sorted(outcome.finished) == ["t0_schedule=linear", "t1_schedule=cosine"], outcome
        assert outcome.exit_code == 0

        exps = _rest(base, "/api/2.0/mlflow/experiments/search", {"max_results": 50})["experiments"]
        (exp,) = [e for e in exps if e["name"] == "multinode"]
        runs = _rest(base, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
        tags = {r["info"]["run_id"]: {t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs}
        roles = sorted(t[keys.TAG_ROLE] for t in tags.values())
        assert roles == ["parent", "trial", "trial"], roles
        trials = [r for r in runs if tags[r["info"]["run_id"]][keys.TAG_ROLE] == "trial"]

        # Placement: each trial recorded the Ray node it ran on; two different worker nodes, never the head.
        nodes = {tags[r["info"]["run_id"]][keys.TAG_NODE] for r in trials}
        alive = {n.node_id for n in cluster.list_all_nodes()}
        head = cluster.head_node.node_id
        assert len(nodes) == WORKERS and nodes <= alive and head not in nodes, (nodes, alive, head)

        # Every point: each metric key of each trial has exactly one point per step it is logged at (summaries at
        # step 0, per-epoch metrics at 1..epochs), and the epoch metrics are all there.
        for r in trials:
            run_id = r["info"]["run_id"]
            assert r["info"]["status"] == "FINISHED" and tags[run_id][keys.TAG_STATUS] == "finished"
            metric_keys = [m["key"] for m in r["data"]["metrics"]]
            assert {"train/loss", "is/digits-cnn/n40/ddim-3/mean"} <= set(metric_keys), metric_keys
            for key in metric_keys:
                steps = _history(base, run_id, key)
                assert steps in ([0], list(range(1, epochs + 1))), (key, steps)
            assert _history(base, run_id, "train/loss") == list(range(1, epochs + 1))


# ------------------------------------------------------------------------------------------- cluster pre-flight


def _spec(tmp_path: Path, **overrides: object) -> StudySpec:
    base, _ = load_study(write_spec(tmp_path / "c.yaml", micro_spec("check", **overrides)))
    return base


def test_check_cluster_passes_when_every_node_shares_the_storage(cluster, tmp_path: Path) -> None:
    storage = tmp_path / "studies"
    assert check_cluster(cluster.address, storage, _spec(tmp_path)) == []
    assert not any(storage.iterdir()), "the check leaves no token files behind"


def test_check_cluster_names_what_no_single_node_offers(cluster, tmp_path: Path) -> None:
    """2 CPUs in total, but 1 per node: a 2-CPU trial would stay pending forever; so would a 1-GPU trial."""
    (problem,) = check_cluster(cluster.address, tmp_path / "studies", _spec(tmp_path, **{"resources.cpus": 2}))
    assert "resources.cpus=2" in problem and "no node of the cluster has 2 CPUs" in problem
    (problem,) = check_cluster(cluster.address, tmp_path / "studies", _spec(tmp_path, **{"resources.gpus": 1}))
    assert "no node of the cluster has 1 GPUs (" in problem  # the CPUs are there: only the GPU is named


def test_check_cluster_refuses_storage_the_driver_cannot_write(cluster, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    (problem,) = check_cluster(cluster.address, tmp_path / "a-file" / "studies", _spec(tmp_path))
    assert "not writable from the driver" in problem


def test_check_cluster_refuses_an_unreachable_address_without_connecting(tmp_path: Path) -> None:
    import ray
    from conftest import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there (ray.init would retry it for minutes)
    (problem,) = check_cluster(address, tmp_path / "studies", _spec(tmp_path))
    assert f"cannot reach the Ray cluster at {address}" in problem
    assert not ray.is_initialized()  # refused by the quick probe, before ray.init's retries


def _can_unshare_mounts() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs root and unshare -m to give one node its own mount")
def test_check_cluster_names_the_node_that_cannot_see_the_storage(cluster, tmp_path: Path) -> None:
    """A third worker node started in its own mount namespace with an empty tmpfs over the storage path: to Ray it
    is an ordinary node, but it sees a different directory there, as a node without the shared mount would."""
    import ray

    storage = tmp_path / "studies"
    storage.mkdir()
    ray_bin = Path(sys.executable).parent / "ray"
    start = (f"mount -t tmpfs none {shlex.quote(str(storage))} && exec {shlex.quote(str(ray_bin))} start "
             f"--address={cluster.address} --num-cpus=1 --object-store-memory={OBJECT_STORE} --block")  # fmt: skip
    ray.init(address=cluster.address, log_to_driver=False)
    before = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", start],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # only stops a node that never joins; wide for a busy machine
        while not (new := {n["NodeID"] for n in ray.nodes() if n["Alive"]} - before):
            assert proc.poll() is None, "the isolated node's process exited before it joined"
            if time.monotonic() > deadline:  # a hang guard, not a timing check
                pytest.fail("the isolated node did not join (stuck?)")
            time.sleep(0.5)
        (isolated,) = new
        (problem,) = check_cluster(cluster.address, storage, _spec(tmp_path))
        assert "not shared by 1 of 4 Ray nodes" in problem and str(storage) in problem
        assert f"node {isolated[:12]}" in problem and "cannot read the driver's token file" in problem
        assert not any(f"node {n[:12]}" in problem for n in before)
    finally:
        ray.shutdown()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
