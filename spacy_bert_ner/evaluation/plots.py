"""Plots of evaluation results, written as PNG files whole or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..extras import require
from ..io import atomic_path


@contextlib.contextmanager
def png_figure(path: Path, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(**subplots)` to draw on; written to `path` as a PNG (whole or not at all,
    see `atomic_path`) when the block ends without error, and closed either way.

    matplotlib runs on its file-only Agg backend, and a missing matplotlib is a one-line error:
    it comes with the `project` extra, not with the core.
    """
    require("matplotlib", "plotting").use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        with atomic_path(path) as tmp_path:
            fig.savefig(tmp_path, format="png", dpi=120)
    finally:
        plt.close(fig)


def plot_metrics(
    metrics: dict[str, Any], confusion: dict[str, dict[str, int]], path: Path | str
) -> Path:
    """Write a PNG: per-type P/R/F1 bars (conlleval mode) and the span confusion heatmap."""
    path = Path(path)
    scores = metrics["conlleval"]
    labels = list(scores["per_type"])
    rows = list(confusion)
    cols = list(next(iter(confusion.values()), {}))
    figsize = (6 + 1.1 * max(len(labels), len(cols)), 5.5)
    with png_figure(path, nrows=1, ncols=2, figsize=figsize) as (fig, (ax_bars, ax_conf)):
        from matplotlib.colors import LogNorm

        width = 0.27
        for i, (key, name) in enumerate((("precision", "P"), ("recall", "R"), ("f1", "F1"))):
            xs = [x + (i - 1) * width for x in range(len(labels))]
            values = [100 * scores["per_type"][label][key] for label in labels]
            bars = ax_bars.bar(xs, values, width, label=name)
            ax_bars.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax_bars.set_xticks(range(len(labels)), labels)
        ax_bars.set_ylim(0, 122)  # headroom for the legend above 100%
        ax_bars.set_yticks(range(0, 101, 20))
        ax_bars.set_xlabel("entity type")
        ax_bars.set_ylabel("score (%)")
        ax_bars.set_title(f"conlleval per type (micro F1 {100 * scores['f1']:.2f})")
        ax_bars.legend(loc="upper center", ncol=3, frameon=False)

        matrix = np.array([[confusion[row][col] for col in cols] for row in rows], dtype=int)
        if matrix.size == 0:
            matrix = np.zeros((1, 1), dtype=int)
        peak = int(matrix.max())
        # Log colours: on real data the diagonal is 100x the errors, which would vanish on
        # a linear scale; empty cells stay white, every count is written in its cell.
        image = ax_conf.imshow(
            np.ma.masked_equal(matrix, 0), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(peak, 2))
        )
        for r, values in enumerate(matrix):
            for c, value in enumerate(values):
                color = "white" if value > 1 and value >= peak**0.75 else "black"
                ax_conf.text(c, r, str(value), ha="center", va="center", color=color)
        ax_conf.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
        ax_conf.set_yticks(range(len(rows)), rows)
        ax_conf.set_xlabel("predicted type")
        ax_conf.set_ylabel("gold type")
        ax_conf.set_title("entity spans: gold vs predicted")
        bar = fig.colorbar(image, ax=ax_conf, fraction=0.046, pad=0.04)
        bar.set_label("spans (log colour scale)")
        bar.minorticks_off()
    return path
