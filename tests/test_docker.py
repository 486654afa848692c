"""The compose file never publishes the unauthenticated MLflow server beyond this host."""

from __future__ import annotations

from conftest import REPO
from ruamel.yaml import YAML


def test_published_ports_bind_to_loopback_only() -> None:
    services = YAML(typ="safe").load((REPO / "docker" / "compose.yaml").read_text())["services"]
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("127.0.0.1:") for p in published), published
