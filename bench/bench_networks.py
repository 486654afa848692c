"""Throughput and peak memory of the paper's networks (issue 4). A script, not a test.

For every network kind and size (``tiny`` = the embedded-digits setting at 16x16x1, ``cifar`` = the reference CIFAR10
configuration at 32x32x3) it measures forward (no grad) and forward+backward (training step without the optimizer)
throughput in images/s, and the peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on CPU the peak resident
set size (getrusage ru_maxrss) of a fresh process that measures only that network, minus its peak before the network
was built (a fresh process per measurement, because ru_maxrss cannot be reset and freed memory is reused).

    python bench/bench_networks.py                       # CPU, every net, both sizes (about 2-3 min on 2 idle cores)
    python bench/bench_networks.py --device cuda --batch 128 --repeats 20
    python bench/bench_networks.py --nets ddpmpp ncsnpp --sizes cifar

Results are printed and written to ``bench/results/networks.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import torch
from pydantic import TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from study.contract.spec.networks import NetworkSpec  # noqa: E402
from trainables.networks import build_network, count_parameters  # noqa: E402

KINDS = ["ddpm_unet", "ncsnv2", "ddpmpp", "ncsnpp", "noisy_classifier"]
TINY: dict[str, dict[str, Any]] = {
    "ddpm_unet": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), norm_groups=8),
    "ncsnv2": dict(channels=16),
    "ddpmpp": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,)),
    "ncsnpp": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,)),
    "noisy_classifier": dict(
        channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), head_channels=16, norm_groups=8
    ),
}
SIZES = {"tiny": (1, 16), "cifar": (3, 32)}


def _maxrss_bytes() -> int:
    """Peak RSS of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _worker(args: tuple[str, str, int, int, str, int | None], queue: Any) -> None:
    kind, size, batch, repeats, device, threads = args
    if threads:
        torch.set_num_threads(threads)
    queue.put(bench_one(kind, size, batch, repeats, torch.device(device)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Any, repeats: int, device: torch.device) -> float:
    """Median seconds per call after one warm-up call (medians resist a busy shared machine)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def bench_one(kind: str, size: str, batch: int, repeats: int, device: torch.device) -> dict[str, Any]:
    in_channels, resolution = SIZES[size]
    fields = TINY[kind] if size == "tiny" else {}
    spec = TypeAdapter(NetworkSpec).validate_python({"kind": kind, **fields})
    classes = 10 if kind == "noisy_classifier" else 0
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    base_rss = _maxrss_bytes()
    torch.manual_seed(0)
    net = build_network(spec, in_channels, resolution, classes).to(device).train()
    x = torch.randn(batch, in_channels, resolution, resolution, device=device)
    # A timestep index for DDPM/DDPM++/classifier, a log-sigma-like value for NCSN++; NCSNv2 ignores it by default.
    t = torch.full((batch,), 0.5 if kind == "ncsnpp" else 300.0, device=device)

    def forward() -> None:
        with torch.no_grad():
            net(x, t)

    def forward_backward() -> None:
        net.zero_grad(set_to_none=True)
        net(x, t).float().square().mean().backward()

    fwd = _timed(forward, repeats, device)
    fwd_bwd = _timed(forward_backward, repeats, device)
    record: dict[str, Any] = {
        "net": kind,
        "size": size,
        "input": [in_channels, resolution, resolution],
        "params": count_parameters(net),
        "device": str(device),
        "batch": batch,
        "forward_img_s": batch / fwd,
        "forward_backward_img_s": batch / fwd_bwd,
    }
    if device.type == "cuda":
        record["peak_mem_mib"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
        record["peak_mem_kind"] = "cuda max_memory_allocated"
    else:
        record["peak_mem_mib"] = (_maxrss_bytes() - base_rss) / 2**20
        record["peak_mem_kind"] = "cpu peak RSS (ru_maxrss) above the pre-build peak, fresh process"
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 4 on CPU, 128 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement, after one warm-up")
    parser.add_argument("--nets", nargs="+", default=KINDS, choices=KINDS)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "networks.json")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("CUDA requested but not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch = args.batch or (128 if device.type == "cuda" else 4)
    env = {
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": psutil.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"# {env}")
    header = f"{'net':<17}{'size':<7}{'params':>12}{'batch':>7}{'fwd img/s':>12}{'fwd+bwd img/s':>15}{'peak MiB':>10}"
    print(header)
    records = []
    ctx = mp.get_context("spawn")
    for kind in args.nets:
        for size in args.sizes:
            # A fresh (spawned) process per measurement: clean peak memory, no allocator state from earlier nets.
            queue = ctx.Queue()
            job = (kind, size, batch, args.repeats, str(device), args.threads)
            proc = ctx.Process(target=_worker, args=(job, queue))
            proc.start()
            r = queue.get()
            proc.join()
            records.append(r)
            print(
                f"{kind:<17}{size:<7}{r['params']:>12,}{batch:>7}{r['forward_img_s']:>12.1f}"
                f"{r['forward_backward_img_s']:>15.1f}{r['peak_mem_mib']:>10.0f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"env": env, "results": records}, indent=2))
    print(f"# wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
