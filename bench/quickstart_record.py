"""The quickstart's run record: what the README quotes, made by running the quick study and reading its report.

``python -m bench.quickstart_record [--out docs/results/quickstart] [--seed N]`` runs ``specs/quickstart.yaml`` (its
training seed replaced by ``--seed`` when given) with ``python -m study run`` in a fresh temporary directory, times
it, and writes ``record.json`` (and ``record-seed<N>.json`` for other seeds): the commit, the CPU, the wall time
and the time to the first epoch line, each trial's stop epoch and status, each curve's state, plateau epoch with
its range and final IS, and the headline paired difference (cosine minus linear under ancestral sampling).
``tests/test_readme.py`` checks that the README quotes ``record.json``. ``--spread`` summarises the records of
several seeds into ``spread.json``: the range of stop and plateau epochs and of the headline difference that the
README states.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from trainables.machine import cpu_description

REPO = Path(__file__).resolve().parents[1]
SPEC = "specs/quickstart.yaml"
HEADLINE = ("axis schedule", "ancestral-20")  # (findings family, evaluation) of specs/quickstart.yaml


def commit() -> str:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "study", "trainables", "analysis", "specs"],
                           cwd=REPO, capture_output=True, text=True).stdout.strip()  # fmt: skip
    return sha.strip() + ("+changes" if dirty else "")


FIRST_EPOCH = re.compile(r"\bepoch\s+1/\d+\b")


def run(workdir: Path, seed: int | None) -> tuple[float, float | None]:
    """Run the quick study in ``workdir`` (its output echoed); returns its wall time and the time from the command
    to the first epoch line, in seconds."""
    (workdir / "specs").mkdir(parents=True)
    text = (REPO / SPEC).read_text()
    if seed is not None:
        text = re.sub(r"(?m)^(\s*seed:\s*)\d+", rf"\g<1>{seed}", text, count=1)
    (workdir / SPEC).write_text(text)
    shutil.copy(REPO / "mlflow.yaml", workdir / "mlflow.yaml")
    t0 = time.perf_counter()
    first = None
    with subprocess.Popen([sys.executable, "-m", "study", "run", SPEC], cwd=workdir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            if first is None and FIRST_EPOCH.search(line):
                first = time.perf_counter() - t0
            sys.stdout.write(line)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return time.perf_counter() - t0, first


def read(report: Path) -> dict[str, Any]:
    """The numbers the README quotes, from the report's tables."""
    conv = pd.read_csv(report / "convergence.csv")
    stops = pd.read_csv(report / "early_stopping.csv")
    found = pd.read_csv(report / "findings.csv")
    curves = {
        f"{r.trial} / {r.evaluation}": {
            "state": r.state,
            "plateau_epoch": None if pd.isna(r.plateau_epoch) else int(r.plateau_epoch),
            "plateau_range": None if pd.isna(r.plateau_epoch_low) else [int(r.plateau_epoch_low),
                                                                        int(r.plateau_epoch_high)],
            "final_epoch": int(r.final_epoch), "final_is": round(float(r.final_is_mean), 2),
        } for r in conv.itertuples(index=False)
    }  # fmt: skip
    trials = {r.trial: {"status": r.status, "epochs_trained": int(r.epochs_trained), "budget": int(r.epoch_budget)}
              for r in stops.itertuples(index=False)}  # fmt: skip
    row = found[(found["family"] == HEADLINE[0]) & (found["under"] == HEADLINE[1])].iloc[0]
    sign = 1 if row["b"] == "cosine" else -1  # the difference as cosine - linear
    lo, hi = sorted((sign * row["low"], sign * row["high"]))
    headline = {
        "epoch": int(row["epoch"]),
        "cosine_minus_linear": round(sign * float(row["difference"]), 2),
        "low": round(float(lo), 2),
        "high": round(float(hi), 2),
        "resolved": bool(row["resolved"]),
    }
    saved = float(stops["train_seconds_saved"].fillna(0).sum()) if "train_seconds_saved" in stops else 0.0
    return {"trials": trials, "curves": curves, "headline": headline, "train_seconds_saved": round(saved)}


def spread(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What another seed (and so, roughly, another machine) changes: over the seeds' records, the range of each
    trial's stop epoch and each curve's plateau epoch, and of the headline difference and its epoch."""

    def span(values: list[Any]) -> list[Any] | None:
        found = [v for v in values if v is not None]
        return [min(found), max(found)] if found else None

    trials = sorted({t for r in records for t in r["trials"]})
    curves = sorted({c for r in records for c in r["curves"]})
    return {
        "seeds": [0 if r["seed"] is None else r["seed"] for r in records],
        "commits": sorted({r["commit"] for r in records}),
        "stop_epoch": {t: span([r["trials"][t]["epochs_trained"] for r in records if t in r["trials"]])
                       for t in trials},
        "plateaued": {c: sum(r["curves"].get(c, {}).get("state") == "plateaued" for r in records) for c in curves},
        "plateau_epoch": {c: span([r["curves"].get(c, {}).get("plateau_epoch") for r in records]) for c in curves},
        "headline": {
            "cosine_minus_linear": span([r["headline"]["cosine_minus_linear"] for r in records]),
            "epoch": span([r["headline"]["epoch"] for r in records]),
            "resolved": sum(bool(r["headline"]["resolved"]) for r in records),
        },
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quickstart_record", description=__doc__)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "quickstart")
    parser.add_argument("--seed", type=int, help="training seed (default: the spec's)")
    parser.add_argument("--spread", action="store_true",
                        help="summarise record.json and record-seed*.json into spread.json (runs nothing)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.spread:
        paths = [args.out / "record.json", *sorted(args.out.glob("record-seed*.json"))]
        summary = spread([json.loads(p.read_text()) for p in paths if p.exists()])
        (args.out / "spread.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="quickstart-") as d:
        wall, first = run(Path(d), args.seed)
        record = {"commit": commit(), "cpu": cpu_description(), "date": time.strftime("%Y-%m-%d"), "seed": args.seed,
                  "wall_seconds": round(wall), "first_epoch_seconds": None if first is None else round(first)}
        record |= read(Path(d) / "studies" / "quickstart" / "report")
    args.out.mkdir(parents=True, exist_ok=True)
    name = "record.json" if args.seed is None else f"record-seed{args.seed}.json"
    (args.out / name).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
