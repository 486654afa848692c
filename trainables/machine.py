"""What machine a number was measured on: timings differ about 3x between the CPUs this harness runs on, and
float results (a trained classifier's weights) differ between CPUs, so every record names its CPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_description() -> str:
    """``<model name>, <widest vector extension>, <n> cores``, e.g. ``Intel(R) Xeon(R) Processor, AVX-512, 2 cores``."""
    info = Path("/proc/cpuinfo")
    text = info.read_text() if info.exists() else ""
    lines = text.splitlines()
    model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")),
                 platform.processor() or "unknown CPU")  # fmt: skip
    flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{model}, {vector}, {os.cpu_count()} cores"
