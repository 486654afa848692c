"""Publish study reports into the repository: ``python -m analysis.publish REPORT_DIR... --out docs/results/digits``.

Copies each report's ``report.md``, its CSV tables and figures (no raw runs, no HTML with embedded images) to
``<out>/<study>/`` and writes ``<out>/claims.md``, the claims table of every study published under ``<out>`` (from
their ``claims.csv``): claim, the study, our measurement, the verdict and whether it agrees with the paper.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

from analysis.tables import to_markdown

AGREES = {"supported": "yes", "contradicted": "no", "unresolved": "not resolved", "no data": "no data"}


def copy_report(report_dir: Path, out: Path) -> Path:
    """``<report_dir>/report.md``, CSVs and figures to ``out`` (replaced)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "figures").mkdir(parents=True)
    for f in [report_dir / "report.md", *report_dir.glob("*.csv")]:
        shutil.copy2(f, out / f.name)
    for f in (report_dir / "figures").glob("*.png"):
        shutil.copy2(f, out / "figures" / f.name)
    return out


def claims_overview(published: dict[str, Path]) -> pd.DataFrame:
    """One row per claim of every published study."""
    rows = []
    for study, folder in published.items():
        path = folder / "claims.csv"
        if not path.is_file():
            continue
        for r in pd.read_csv(path).fillna("").to_dict("records"):
            rows.append({
                "claim (paper)": r["claim"], "source": r["source"], "study": f"[{study}]({folder.name}/report.md)",
                "our measurement (95% CI)": r["our measurement (95% CI)"], "verdict": r["verdict"],
                "agrees with the paper": AGREES.get(r["verdict"], r["verdict"]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.publish", description=__doc__)
    parser.add_argument("reports", nargs="+", type=Path, help="report directories (<storage>/<study>/report)")
    parser.add_argument("--out", type=Path, required=True, help="e.g. docs/results/digits")
    args = parser.parse_args(argv)
    published = {r.parent.name: copy_report(r, args.out / r.parent.name) for r in args.reports}
    # the overview covers every study published under ``out``, not only those published now
    everything = {d.name: d for d in sorted(args.out.iterdir()) if (d / "claims.csv").is_file()} | published
    table = claims_overview(everything)
    text = to_markdown(table.astype(str)) if not table.empty else "(no claims)\n"
    (args.out / "claims.md").write_text(text, encoding="utf-8")
    print(f"published {len(published)} report(s) to {args.out}; claims table: {args.out / 'claims.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
