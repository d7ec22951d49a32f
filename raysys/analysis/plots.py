"""PNG plots for the report: transfer heatmap, log-log scaling fits, leaderboard bars.

matplotlib is imported inside each function (it costs ~0.5 s) and figures are built
with `matplotlib.figure.Figure`, not pyplot: no global figure registry to leak or
close, no backend switch in the caller's process, and PNG output goes through Agg.
"""

from __future__ import annotations

import io
import math
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from raysys.analysis.results import COCKTAIL_KEY, arm_label
from raysys.analysis.scaling import ERROR_FLOOR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.axis import Axis
    from matplotlib.figure import Figure

DPI = 110


def transfer_heatmap(matrix: pd.DataFrame, relative: bool = True) -> bytes:
    """Cells annotated with their value; diverging colours centred on 0 when `relative`."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    values = matrix.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig = Figure(figsize=(2.5 + 1.15 * n_cols, 1.6 + 0.55 * n_rows), layout="constrained")
    ax = fig.add_subplot()
    in_task = matrix.index.to_numpy()[:, None] == matrix.columns.to_numpy()[None, :]
    if relative:
        cmap, norm = colormaps["RdBu"], Normalize(*_symmetric_limits(values, in_task))
    else:
        cmap, norm = colormaps["viridis"], Normalize(0.0, 1.0)
    cmap = cmap.with_extremes(bad="#e0e0e0")  # NaN cells: the pair was not evaluated
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, norm=norm, aspect="auto")
    for (r, c), v in np.ndenumerate(values):
        if math.isnan(v):
            continue
        shade = float(np.clip(norm(v), 0, 1))
        dark = abs(shade - 0.5) > 0.3 if relative else shade < 0.5
        text = f"{v:+.3f}" if relative else f"{v:.3f}"
        ax.text(c, r, text, ha="center", va="center", fontsize=8, color="white" if dark else "k")
        if in_task[r, c]:  # outlined: the in-task gain, not transfer
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=1.5, ec="k"))
    ax.set_xticks(range(n_cols), list(matrix.columns), rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), list(matrix.index), fontsize=8)
    ax.set_xlabel("evaluated task")
    ax.set_ylabel("trained on (singleton)")
    label = "test main − base model" if relative else "test main"
    fig.colorbar(image, ax=ax, label=label, shrink=0.9, extend="both" if relative else "neither")
    return png_bytes(fig)


def _symmetric_limits(values: np.ndarray, in_task: np.ndarray) -> tuple[float, float]:
    """Colour limits from the off-diagonal (transfer) cells: in-task gains are often ten
    times larger and would wash the transfer out to white; they saturate instead and
    keep their printed value."""
    off = values[~in_task & np.isfinite(values)]
    pool = off if off.size else values[np.isfinite(values)]
    lim = float(np.abs(pool).max()) if pool.size else 0.0
    lim = lim or 1e-6
    return -lim, lim


def scaling_plot(points: pd.DataFrame, table: pd.DataFrame, ncols: int = 2) -> bytes:
    """One log-log panel per task: each arm's points (1 − metric vs d) and its fitted line
    (none for an arm swept at too few sizes to fit)."""
    from matplotlib.figure import Figure

    tasks = sorted(table["task"].unique())
    ncols = max(1, min(ncols, len(tasks)))
    nrows = math.ceil(len(tasks) / ncols)
    fig = Figure(figsize=(6.4 * ncols, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    styles = _arm_styles(table)
    for ax, task in zip(axes.flat, tasks, strict=False):
        mine = points[points["task"] == task]
        _scaling_panel(ax, mine, table[table["task"] == task], styles)
        ax.set_title(task, fontsize=10)
    for ax in axes.flat[len(tasks) :]:
        ax.set_visible(False)
    return png_bytes(fig)


def _arm_styles(table: pd.DataFrame) -> dict[tuple, dict]:
    """One style per cocktail arm across all panels, so `all` is the same line everywhere:
    ten distinct colours, then the same colours dashed with another marker."""
    arms = sorted(set(table[COCKTAIL_KEY].itertuples(index=False, name=None)))
    lines, markers = ("-", "--", ":"), ("o", "^", "s")
    return {
        arm: {"color": f"C{i % 10}", "ls": lines[i // 10 % 3], "marker": markers[i // 10 % 3]}
        for i, arm in enumerate(arms)
    }


def _scaling_panel(ax: Axes, points: pd.DataFrame, fits: pd.DataFrame, styles: dict) -> None:
    from matplotlib.ticker import FuncFormatter

    for fit in fits.itertuples(index=False):
        key = (fit.cocktail, fit.general, fit.math)
        mine = points[(points[COCKTAIL_KEY] == pd.Series(key, index=COCKTAIL_KEY)).all(axis=1)]
        style = styles[key]
        error = np.clip(1.0 - mine["metric"].to_numpy(float), ERROR_FLOOR, None)
        ax.scatter(mine["d"], error, color=style["color"], marker=style["marker"], s=14, alpha=0.7)
        if not math.isfinite(fit.alpha):  # fewer than 3 sizes: the points, and no law
            ax.plot([], [], color=style["color"], marker=style["marker"], ls="none",
                    label=f"{arm_label(*key)}  {fit.fit}")  # fmt: skip
            continue
        d = np.geomspace(mine["d"].min(), mine["d"].max(), 50)
        label = f"{arm_label(*key)}  α={fit.alpha:.2f}"
        ax.plot(d, fit.A * d**-fit.alpha, color=style["color"], ls=style["ls"], lw=1.3, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    # 200, 400, 800 reads better than 2×10² or 4e−01; on x, ticks at the swept sizes.
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    sizes = np.unique(points["d"].to_numpy(float))
    if len(sizes) <= 8:
        ax.set_xticks(sizes)
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.xaxis.set_major_formatter(plain)
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(partial(_minor_label, ax.yaxis)))
    ax.set_xlabel("task training rows d", fontsize=8)
    ax.set_ylabel("1 − test main", fontsize=8)
    ax.tick_params(which="both", labelsize=7)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def _minor_label(axis: Axis, value: float, _pos: int | None) -> str:
    """Label minor log ticks only on a short axis; past ~1.3 decades they crowd it."""
    lo, hi = sorted(axis.get_view_interval())
    return f"{value:g}" if lo > 0 and hi / lo < 20 else ""


def leaderboard_plot(board: pd.DataFrame) -> bytes:
    """Per task: base model, single-task baseline and best cocktail, with CI whiskers."""
    from matplotlib.figure import Figure

    n = len(board)
    fig = Figure(figsize=(2.0 + 1.5 * n, 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(n)
    width = 0.27
    bars = [
        ("base model", "base_test", None, None, "#9e9e9e"),
        ("single-task", "single_test", "single_lo", "single_hi", "C0"),
        ("best cocktail (by val)", "test_mean", "test_lo", "test_hi", "C1"),
    ]
    for k, (label, mean, lo, hi, colour) in enumerate(bars):
        heights = board[mean].to_numpy(float)
        err = None if lo is None else _yerr(heights, board[lo], board[hi])
        ax.bar(
            x + (k - 1) * width,
            heights,  # NaN: no bar, no whisker
            width,
            yerr=err,
            capsize=3,
            label=label,
            color=colour,
        )
    _baseline_ticks(ax, x, board, width)
    cols = ["task", "best_cocktail", "general", "math"]
    names = [_bar_label(*r) for r in board[cols].itertuples(index=False, name=None)]
    ax.set_xticks(x, names, fontsize=7.5)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("test main metric")
    ax.grid(True, axis="y", alpha=0.25)
    fig.legend(fontsize=8, loc="outside upper center", ncols=4, frameon=False)
    return png_bytes(fig)


def _baseline_ticks(ax: Axes, x: np.ndarray, board: pd.DataFrame, width: float) -> None:
    """The majority-label baseline as a dashed line across each task's bars."""
    if "majority" not in board or board["majority"].isna().all():
        return
    left, right = x - 1.5 * width, x + 1.5 * width
    ax.hlines(board["majority"].to_numpy(float), left, right, colors="k", linestyles="--",
              lw=1.0, label="majority baseline")  # fmt: skip


def _bar_label(task: str, cocktail: object, general: float, maths: float) -> str:
    """Task, then the chosen arm with its shares on their own line (narrow bars)."""
    if not isinstance(cocktail, str):
        return task
    return f"{task}\n" + arm_label(cocktail, general, maths).replace(" + ", "\n+ ")


def _yerr(heights: np.ndarray, lo: pd.Series, hi: pd.Series) -> np.ndarray:
    """Whisker lengths below and above; 0 where the interval is unknown."""
    below = heights - lo.to_numpy(float)
    above = hi.to_numpy(float) - heights
    return np.nan_to_num(np.vstack([below, above]).clip(min=0))


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
