"""Pre-flight of a Ray cluster (``study run --address``): shared storage and per-trial resources, in seconds.

Ray Tune keeps each trial's checkpoints under the storage path and restores a trial on whichever node has room
(after a crash, a lost node or a resumed study), so every node must read and write the *same* path: on a
multi-node cluster that means a shared file system (NFS, a Kubernetes PVC) mounted at the same place. A node that
sees its own local directory instead starts trials fine and only fails, or silently restarts from scratch, when a
checkpoint written elsewhere has to be read. The check makes that visible before a trial starts: the driver
writes a token file; one task pinned to each alive node (``NodeAffinitySchedulingStrategy``, zero CPUs so a busy
or CPU-less head node still runs it) reads it and writes its own, which the driver reads back.

A trial asks for ``resources.cpus`` / ``resources.gpus`` *on one node*; a cluster whose totals suffice but whose
every node is too small keeps the trial pending forever, so the check is per node.
"""

from __future__ import annotations

import logging
import socket
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0  # ray.init retries an unreachable address for minutes; a TCP connect answers in seconds
PROBE_TIMEOUT_S = 30.0  # a node whose probe task has not answered by then is reported (dead, or no worker starts)
TOKEN_PREFIX = ".cluster-check-"


def _node_name(node: dict[str, Any]) -> str:
    """How the messages name a node: its host, address and short Ray node id (``ray.nodes()`` entry)."""
    host = node.get("NodeManagerHostname") or "?"
    return f"{host} ({node.get('NodeManagerAddress', '?')}, node {node['NodeID'][:12]})"


def _probe(storage: str, token_name: str, token: str, node_id: str) -> str | None:
    """Runs on one node: None when the driver's token is readable there and the node could write its answer."""
    path = Path(storage) / token_name
    try:
        seen = path.read_text()
    except OSError as e:
        return f"cannot read the driver's token file {path} ({e.strerror or e})"
    if seen != token:
        return f"{path} holds another token: this node sees a different directory at that path"
    try:
        (Path(storage) / f"{token_name}.{node_id}").write_text(token)
    except OSError as e:
        return f"cannot write to {storage} ({e.strerror or e})"
    return None


def storage_problems(storage: str | Path, nodes: list[dict[str, Any]]) -> list[str]:
    """Problems with ``storage`` as seen from the driver and from each alive node of the connected Ray cluster."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    root = Path(storage).expanduser().resolve()
    token, token_name = uuid.uuid4().hex, f"{TOKEN_PREFIX}{uuid.uuid4().hex[:12]}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / token_name).write_text(token)
    except OSError as e:
        return [f"the storage path {root} is not writable from the driver ({e.strerror or e})"]
    try:
        probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        refs = {
            probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(
                str(root), token_name, token, n["NodeID"]
            ): n
            for n in nodes
        }
        done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        failed: list[str] = [f"{_node_name(refs[r])}: no answer within {PROBE_TIMEOUT_S:g} s" for r in pending]
        for ref in done:
            node = refs[ref]
            try:
                why = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - a task error of any kind is this node's problem to report
                why = f"the check task failed ({type(e).__name__}: {e})"
            if why is None and not (root / f"{token_name}.{node['NodeID']}").exists():
                why = f"wrote its answer to {root}, but the driver does not see it there"
            if why is not None:
                failed.append(f"{_node_name(node)}: {why}")
        for ref in pending:
            ray.cancel(ref, force=True)
    finally:
        for f in root.glob(f"{token_name}*"):
            f.unlink(missing_ok=True)
    if not failed:
        return []
    return [
        f"the storage path {root} is not shared by {len(failed)} of {len(nodes)} Ray nodes; each must mount the same "
        "shared file system (NFS, a Kubernetes PVC) at this path, or checkpoints cannot be restored on another node:\n"
        + "\n".join(f"    {line}" for line in sorted(failed))
    ]


def resource_problems(cpus: float, gpus: float, nodes: list[dict[str, Any]]) -> list[str]:
    """A problem unless at least one alive node offers ``cpus`` CPUs and ``gpus`` GPUs at once (a trial's ask)."""
    fits = [n for n in nodes if n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus]
    if fits:
        return []
    have = "; ".join(
        f"{_node_name(n)}: {n['Resources'].get('CPU', 0):g} CPU, {n['Resources'].get('GPU', 0):g} GPU" for n in nodes
    )
    missing = []
    if not any(n["Resources"].get("CPU", 0) >= cpus for n in nodes):
        missing.append(f"{cpus:g} CPUs")
    if not any(n["Resources"].get("GPU", 0) >= gpus for n in nodes):
        missing.append(f"{gpus:g} GPUs")
    what = " and ".join(missing) or f"{cpus:g} CPUs together with {gpus:g} GPUs"
    return [
        f"each trial asks for resources.cpus={cpus:g}, resources.gpus={gpus:g} on one node, but no node of the "
        f"cluster has {what} (trials would wait forever): lower resources.cpus / resources.gpus or add a larger "
        f"node. Nodes: {have or 'none alive'}"
    ]


def unreachable(address: str) -> str | None:
    """Why ``host:port`` (a GCS address, or a ``ray://`` client address) takes no TCP connection, else None.
    ``auto`` and ``local`` are resolved by Ray itself (and fail fast when no cluster runs here)."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if address in ("auto", "local") or not sep or not port.isdigit():
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return None
    except OSError as e:
        return f"cannot reach the Ray cluster at {address} within {CONNECT_TIMEOUT_S:g} s ({e.strerror or e})"


def check_cluster(address: str | None, storage: str | Path, spec: Any) -> list[str]:
    """Problems that would stop or strand the trials of ``spec`` (a ``StudySpec``) on the Ray cluster at
    ``address``: the storage path not writable or not shared by every alive node, or no node large enough for one
    trial. Empty when it can run. Connects to (and afterwards disconnects from) the cluster unless this process is
    already connected; ``address=None`` checks a local Ray instance started for the check."""
    import ray

    connected_here = not ray.is_initialized()
    if connected_here:
        if address and (why := unreachable(address)):
            return [why]
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)  # fmt: skip
        except (ConnectionError, RuntimeError, ValueError) as e:
            return [f"cannot connect to the Ray cluster at {address!r}: {e}"]
    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        problems = resource_problems(spec.resources.cpus, spec.resources.gpus, nodes)
        problems += storage_problems(storage, nodes)
    finally:
        if connected_here:
            ray.shutdown()
    for p in problems:
        log.debug("cluster check: %s", p)
    return problems
