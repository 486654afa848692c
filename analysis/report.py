"""Convergence report of a study: figures, tables, ``report.md`` and a self-contained ``index.html``.

Layout written into ``out_dir``::

    figures/is_vs_epoch.png   IS vs epoch per evaluation, ±std bands, plateaus marked
    figures/loss.png          training loss per trial (log y)
    convergence.csv           one row per (trial, evaluation, extractor, n_samples) curve
    compute.csv               one row per (trial, evaluation): training and sampling cost
    report.md                 title, description, plateau rule, tables, image links
    index.html                the same, images embedded as data URIs (no external assets)

When ``log_to_mlflow`` is true and the study has a parent run, the directory is logged to the latest
parent run under the artifact path ``report``.
"""

from __future__ import annotations

import base64
import html
import logging
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from mlflow import MlflowClient

from analysis.figures import plot_is_vs_epoch, plot_loss
from analysis.plateau import PlateauRule
from analysis.runs import StudyRuns, load_study
from analysis.tables import (
    compute_plateaus,
    compute_table,
    convergence_table,
    display_compute,
    display_convergence,
    to_html,
    to_markdown,
)

__all__ = ["write_report", "ARTIFACT_PATH"]

log = logging.getLogger(__name__)

ARTIFACT_PATH = "report"
IS_FIGURE = "figures/is_vs_epoch.png"
LOSS_FIGURE = "figures/loss.png"


def _summary(study: StudyRuns) -> list[str]:
    counts = Counter(study.trials["status"]) if len(study.trials) else Counter()
    status = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"
    return [
        f"- experiment id: `{study.experiment_id}`",
        f"- parent run: `{study.parent_run_id}`" if study.parent_run_id else "- parent run: none",
        f"- trials: {len(study.trials)} ({status})",
        f"- axes: {', '.join(study.axes) or 'none'}",
        f"- generated: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC')}",
    ]


def _markdown(study: StudyRuns, rule: PlateauRule, conv_md: str, comp_md: str) -> str:
    parts = [f"# Study report: {study.study_name}", ""]
    if study.description:
        parts += [study.description.strip(), ""]
    parts += _summary(study) + [""]
    parts += ["## Inception Score vs epoch", "", f"![IS vs epoch]({IS_FIGURE})", ""]
    parts += ["## Convergence", "", f"Plateau rule: {rule.describe()}.", "",
              "A star and a dotted line mark each plateau in the figure; `converged = no` means no plateau "
              "was found yet (or the trial diverged, see note).", "", conv_md]
    parts += ["## Compute", "",
              "Training seconds exclude evaluation; sampling seconds are wall seconds to generate the "
              "n samples of one evaluation at one epoch (mean over evaluated epochs); NFE per sample.", "",
              comp_md]
    parts += ["## Training loss", "", f"![training loss]({LOSS_FIGURE})", ""]
    return "\n".join(parts)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html(study: StudyRuns, rule: PlateauRule, out_dir: Path, conv_html: str, comp_html: str) -> str:
    name = html.escape(study.study_name)
    summary = "".join(f"<li>{html.escape(line[2:]).replace('`', '')}</li>" for line in _summary(study))
    desc = f"<p>{html.escape(study.description.strip())}</p>" if study.description else ""
    style = ("body{font-family:sans-serif;margin:2em;max-width:1400px}"
             "table{border-collapse:collapse;font-size:0.9em;margin:1em 0}"
             "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#eee}"
             "img{max-width:100%}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Study report: {name}</title>
<style>{style}</style></head>
<body>
<h1>Study report: {name}</h1>
{desc}
<ul>{summary}</ul>
<h2>Inception Score vs epoch</h2>
{_img(out_dir / IS_FIGURE, "IS vs epoch")}
<h2>Convergence</h2>
<p>Plateau rule: {html.escape(rule.describe())}.</p>
{conv_html}
<h2>Compute</h2>
{comp_html}
<h2>Training loss</h2>
{_img(out_dir / LOSS_FIGURE, "training loss")}
</body></html>
"""


def write_report(
    tracking_uri: str,
    study_name: str,
    out_dir: Path,
    *,
    log_to_mlflow: bool = True,
    rule: PlateauRule | None = None,
    references: dict[tuple[str, int], float] | None = None,
) -> Path:
    """Load ``study_name`` from ``tracking_uri``, write the report into ``out_dir``, return ``report.md``'s path.

    ``rule`` overrides the default :class:`PlateauRule`; ``references`` maps (extractor, n_samples) to
    a real-data IS drawn as a dashed line.
    """
    rule = rule or PlateauRule()
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    study = load_study(tracking_uri, study_name)

    plateaus = compute_plateaus(study, rule)
    conv = convergence_table(study, plateaus)
    comp = compute_table(study)
    conv.to_csv(out_dir / "convergence.csv", index=False)
    comp.to_csv(out_dir / "compute.csv", index=False)

    trials = list(study.trials["trial"])
    statuses = dict(zip(study.trials["trial"], study.trials["status"], strict=True))
    plot_is_vs_epoch(study.scores, plateaus, out_dir / IS_FIGURE, title=f"{study_name}: Inception Score vs epoch",
                     trials=trials, statuses=statuses, references=references)
    plot_loss(study.losses, out_dir / LOSS_FIGURE, title=f"{study_name}: training loss", trials=trials)

    conv_d, comp_d = display_convergence(conv, study.axes), display_compute(comp, study.axes)
    report = out_dir / "report.md"
    report.write_text(_markdown(study, rule, to_markdown(conv_d), to_markdown(comp_d)), encoding="utf-8")
    (out_dir / "index.html").write_text(_html(study, rule, out_dir, to_html(conv_d), to_html(comp_d)),
                                        encoding="utf-8")
    log.info("wrote report of %s to %s", study_name, out_dir)

    if log_to_mlflow:
        if study.parent_run_id is None:
            log.warning("study %s has no parent run; report not logged to MLflow", study_name)
        else:
            MlflowClient(tracking_uri=tracking_uri).log_artifacts(study.parent_run_id, str(out_dir), ARTIFACT_PATH)
            log.info("logged report to run %s under %s/", study.parent_run_id, ARTIFACT_PATH)
    return report
