"""``python -m bench [--quick] [--out DIR]``: the benchmark suite (bench/suite.py) on this machine's device."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from bench.suite import ROOT, run_suite, to_markdown, write


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = run_suite(args.quick)
    print(to_markdown(results))
    for path in write(results, Path(args.out)):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
