"""How long the README's test command takes, idle and beside a CPU-bound load: the record the README quotes.

``python -m bench.test_command_record [--load] [--out docs/results/test-command]`` runs the README's test command
after the install (``ruff check .`` then ``python -m pytest``) in this checkout, times it, and writes
``record-idle.json`` (or ``record-loaded.json`` with ``--load``): the commit, the CPU, the wall time, pytest's summary
line and the exit status. ``--load`` keeps the quick study running beside the tests the whole time, one run after
another in a temporary directory (its two trials are two CPU-bound processes), and stops it with Ctrl-C when the
tests end. ``tests/test_readme.py`` checks that the README quotes both records.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.quickstart_record import commit
from trainables.machine import cpu_description

REPO = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=*\s*(\d+ (?:passed|failed).*) in [\d.]+s", re.M)
LOAD = "the quick study running beside the tests (two CPU-bound trial processes)"


def start_load(workdir: Path) -> subprocess.Popen:
    """The quick study, run after run in ``workdir``, in its own process group (so Ctrl-C reaches all of it)."""
    loop = (f"while true; do {sys.executable} -m bench.quickstart_record --seed 1 --out {workdir}/out "
            f"|| exit 0; done")  # fmt: skip
    return subprocess.Popen(["bash", "-c", loop], cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def stop_load(proc: subprocess.Popen) -> None:
    """Ctrl-C to the whole group (the study stops Ray and exits 130, ending the loop); a kill after 2 minutes."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_tests() -> tuple[int, str, float]:
    """(exit status, pytest's summary, seconds) of ``ruff check . && python -m pytest``."""
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO).returncode
    out = ""
    if rc == 0:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO,
                              capture_output=True, text=True)  # fmt: skip
        rc, out = proc.returncode, proc.stdout
        sys.stdout.write(out[-3000:])
    found = SUMMARY.search(out)
    return rc, found.group(1) if found else "ruff failed" if not out else "no summary", time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.test_command_record", description=__doc__)
    parser.add_argument("--load", action="store_true", help=f"with {LOAD}")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "test-command")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="test-load-") as d:
        load = start_load(Path(d)) if args.load else None
        try:
            rc, summary, seconds = run_tests()
        finally:
            if load is not None:
                stop_load(load)
    record = {"commit": commit(), "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"),
              "load": LOAD if args.load else "none (idle)", "wall_seconds": round(seconds), "summary": summary,
              "returncode": rc}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"record-{'loaded' if args.load else 'idle'}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
