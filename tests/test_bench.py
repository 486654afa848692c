"""``bench/gpu_check.sh --smoke`` runs end to end on CPU (issue 12): the fast-path tests pass and the suite writes
every row. Timings are never asserted, only that each step ran and wrote its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_runs_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    # --smoke runs without the script's own per-step bounds; this timeout only stops a hang, wide for a busy machine
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--smoke"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert " passed" in (tmp_path / "fast_paths-cpu.txt").read_text()
    (result,) = tmp_path.glob("cpu-*.json")
    rows = json.loads(result.read_text())
    assert {s["sampler"] for s in rows["samplers"]} >= {"ancestral", "ddim", "karras", "annealed_langevin"}
    assert all(s["overhead"] > 0 for s in rows["samplers"]) and rows["trainable"]["ratio"] > 0
    assert 0 < rows["study"]["share"] < 1 and rows["evaluation"]["digits_cnn_s_per_1k"] > 0
    assert "no GPU" in rows["paper_network"]["gpu"] and rows["e1_projection"]["h100_hours"] > 0
    assert (tmp_path / result.name.replace(".json", ".md")).read_text().startswith("# Benchmarks")
