"""Report figures, drawn on ``matplotlib.figure.Figure`` objects (Agg canvas, no pyplot state)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis.plateau import Verdict as Plateau

__all__ = ["plot_is_vs_epoch", "plot_loss", "trial_palette"]

log = logging.getLogger(__name__)

PlateauMap = Mapping[tuple[str, str, str, int], Plateau]


def trial_palette(trials: list[str]) -> dict[str, tuple[float, float, float]]:
    """One stable colour per trial, shared by all figures."""
    colours = sns.color_palette("tab10" if len(trials) <= 10 else "husl", max(len(trials), 1))
    return {t: colours[i] for i, t in enumerate(trials)}


def _finite(df: pd.DataFrame, col: str) -> pd.DataFrame:
    return df[np.isfinite(df[col].to_numpy(dtype=float))]


def _empty(path: Path, title: str, message: str) -> Path:
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path


def plot_is_vs_epoch(
    scores: pd.DataFrame,
    plateaus: PlateauMap,
    path: Path,
    *,
    title: str,
    trials: list[str],
    statuses: Mapping[str, str] | None = None,
    references: Mapping[tuple[str, int], float] | None = None,
) -> Path:
    """IS vs epoch: one panel per evaluation (columns) and per (extractor, n) (rows).

    One line per trial with a ±std band; the plateau is a star and a dotted vertical line in the
    trial's colour. ``references[(extractor, n)]`` (optional) draws the real-data IS as a dashed line.
    """
    data = _finite(scores, "is_mean")
    if data.empty:
        return _empty(path, title, "no Inception Score logged yet")
    palette = trial_palette(trials)
    evaluations = sorted(data["evaluation"].unique())
    combos = sorted({(str(x), int(n)) for x, n in zip(data["extractor"], data["n_samples"], strict=True)})
    # Panels wrap at 3 per row (a sampler with its guidance variants fills one row when ids sort together).
    panels = [(extractor, n, evaluation) for extractor, n in combos for evaluation in evaluations]
    ncols = min(3, len(evaluations))
    nrows = -(-len(panels) // ncols)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(4.8 * ncols + 0.5, 3.8 * nrows + 0.6), layout="constrained")
        axs = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axs[len(panels):]:
            ax.set_visible(False)
        xlim = (0, float(data["epoch"].max()) * 1.03 + 0.5)
        for ax, (extractor, n, evaluation) in zip(axs, panels, strict=False):
            panel = data[(data["extractor"] == extractor) & (data["n_samples"] == n)
                         & (data["evaluation"] == evaluation)]
            ax.set_xlim(*xlim)
            for trial, g in panel.groupby("trial", sort=True):
                colour = palette[str(trial)]
                sns.lineplot(x=g["epoch"], y=g["is_mean"], color=colour, marker="o", markersize=4,
                             ax=ax, errorbar=None)
                std = g["is_std"].to_numpy(dtype=float)
                std = np.where(np.isfinite(std), std, 0.0)
                ax.fill_between(g["epoch"], g["is_mean"] - std, g["is_mean"] + std, color=colour,
                                alpha=0.18, linewidth=0)
                p = plateaus.get((str(trial), evaluation, extractor, n))
                if p is not None and p.converged:
                    ax.axvline(p.epoch, color=colour, linestyle=":", linewidth=1.5)
                    ax.scatter([p.epoch], [p.is_mean], marker="*", s=200, color=colour,
                               edgecolors="black", linewidths=0.8, zorder=5)
            if references and (extractor, n) in references:
                ax.axhline(references[(extractor, n)], color="grey", linestyle="--", linewidth=1)
            ax.set_title(f"{evaluation}" if len(combos) == 1 else f"{evaluation} ({extractor}, n={n})")
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"Inception Score ({extractor}, n={n})")
            if panel.empty:  # this evaluation was not scored with this (extractor, n)
                ax.set_visible(False)
        statuses = statuses or {}
        handles = [
            Line2D([], [], color=palette[t], marker="o", markersize=4,
                   label=t if statuses.get(t, "finished") == "finished" else f"{t} ({statuses[t]})")
            for t in trials if t in set(data["trial"])
        ]
        handles.append(Line2D([], [], color="black", linestyle=":", marker="*", markersize=11,
                              markerfacecolor="white", label="plateau (convergence)"))
        if references:
            handles.append(Line2D([], [], color="grey", linestyle="--", label="real data"))
        fig.legend(handles=handles, loc="outside right center", title="trial", fontsize="small")
        fig.suptitle(title)
        fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path


def plot_loss(losses: pd.DataFrame, path: Path, *, title: str, trials: list[str]) -> Path:
    """Training loss (epoch mean) per trial on a log y axis; non-finite / non-positive values dropped."""
    data = _finite(losses, "loss")
    data = data[data["loss"] > 0]
    if data.empty:
        return _empty(path, title, "no training loss logged yet")
    palette = trial_palette(trials)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        fig = Figure(figsize=(8, 4.5), layout="constrained")
        ax = fig.add_subplot()
        sns.lineplot(data=data, x="epoch", y="loss", hue="trial", palette=palette,
                     hue_order=[t for t in trials if t in set(data["trial"])], ax=ax, errorbar=None,
                     marker="o", markersize=3, markeredgewidth=0)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss (epoch mean, log scale)")
        ax.set_title(title)
        legend = ax.get_legend()
        if legend is not None:
            legend.set_title("trial")
        fig.savefig(path, dpi=110)
    log.info("wrote %s", path)
    return path
