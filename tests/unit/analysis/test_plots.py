"""`raysys.analysis.plots`: every plot is a PNG that decodes, at the size its data asks
for; NaN cells, unfit arms and missing intervals draw without failing; the helpers that
place colours, whiskers and labels."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from raysys.analysis import plots

NAN = math.nan


def _png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(data))
    img.load()  # decodes every pixel: a truncated file fails here
    return img


def _about(size: tuple[int, int], inches: tuple[float, float]) -> bool:
    """The pixel size of a figure of `inches` at the plots' DPI (matplotlib truncates)."""
    return all(abs(px - i * plots.DPI) <= 1 for px, i in zip(size, inches, strict=True))


def _colours(img: Image.Image) -> int:
    return len(np.unique(np.asarray(img.convert("RGB")).reshape(-1, 3), axis=0))


def test_transfer_heatmap_is_a_png_sized_by_the_matrix():
    tasks = ["a", "b", "c"]
    matrix = pd.DataFrame(
        [[0.25, 0.05, NAN], [0.01, 0.30, 0.0], [-0.04, 0.03, 0.2]], index=tasks, columns=tasks
    )
    img = _png(plots.transfer_heatmap(matrix))
    assert img.format == "PNG"
    assert _about(img.size, (2.5 + 1.15 * 3, 1.6 + 0.55 * 3))
    assert _colours(img) > 50  # a coloured heatmap, not a blank canvas
    wide = _png(plots.transfer_heatmap(matrix.iloc[:2], relative=False))
    assert wide.size[1] < img.size[1]  # fewer rows: a shorter figure


def test_symmetric_limits_come_from_the_transfer_cells():
    values = np.array([[0.5, 0.02], [-0.05, 0.4]])
    in_task = np.eye(2, dtype=bool)
    assert plots._symmetric_limits(values, in_task) == (-0.05, 0.05)
    only_diagonal = np.array([[0.3, NAN], [NAN, -0.6]])
    assert plots._symmetric_limits(only_diagonal, in_task) == (-0.6, 0.6)
    assert plots._symmetric_limits(np.zeros((2, 2)), in_task) == (-1e-6, 1e-6)
    assert plots._symmetric_limits(np.full((1, 1), NAN), np.eye(1, dtype=bool)) == (-1e-6, 1e-6)


def _scaling_inputs():
    rows = []
    for task in ("t1", "t2", "t3"):
        for d in (100.0, 200.0, 400.0):
            rows.append(
                {
                    "task": task,
                    "cocktail": "all",
                    "general": 0.0,
                    "math": 0.0,
                    "d": d,
                    "metric": 1 - 0.9 * d**-0.3,
                }
            )
            rows.append(
                {"task": task, "cocktail": task, "general": 0.1, "math": 0.0, "d": d, "metric": 1.0}
            )
    points = pd.DataFrame(rows)
    fits = []
    for task in ("t1", "t2", "t3"):
        fits.append(
            {
                "task": task,
                "cocktail": "all",
                "general": 0.0,
                "math": 0.0,
                "alpha": 0.3,
                "A": 0.9,
                "fit": "ok",
            }
        )
        fits.append(
            {
                "task": task,
                "cocktail": task,
                "general": 0.1,
                "math": 0.0,
                "alpha": NAN,
                "A": NAN,
                "fit": "2 sizes: no fit",
            }
        )
    return points, pd.DataFrame(fits)


def test_scaling_plot_has_one_panel_per_task_in_rows_of_two():
    points, fits = _scaling_inputs()
    img = _png(plots.scaling_plot(points, fits))
    assert _about(img.size, (6.4 * 2, 3.3 * 2))  # 3 tasks: 2 x 2
    one_col = _png(plots.scaling_plot(points, fits, ncols=1))
    assert _about(one_col.size, (6.4, 3.3 * 3))


def test_arm_styles_are_the_same_arm_everywhere_and_distinct():
    table = pd.DataFrame(
        {"cocktail": [f"c{i:02d}" for i in range(12)] + ["c00"], "general": 0.0, "math": 0.0}
    )
    styles = plots._arm_styles(table)
    assert len(styles) == 12
    assert styles[("c00", 0.0, 0.0)] == {"color": "C0", "ls": "-", "marker": "o"}
    assert styles[("c10", 0.0, 0.0)] == {"color": "C0", "ls": "--", "marker": "^"}  # 11th arm


def _board() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task": ["news_sentiment", "fin_ner"],
            "best_cocktail": ["all", NAN],
            "general": [0.1, 0.0],
            "math": [0.0, 0.0],
            "base_test": [0.3, 0.1],
            "single_test": [0.6, NAN],
            "single_lo": [0.55, NAN],
            "single_hi": [0.65, NAN],
            "test_mean": [0.7, 0.4],
            "test_lo": [NAN, 0.35],
            "test_hi": [NAN, 0.45],
            "majority": [0.33, NAN],
        }
    )


def test_leaderboard_plot_draws_missing_bars_and_intervals():
    img = _png(plots.leaderboard_plot(_board()))
    assert _about(img.size, ((2.0 + 1.5 * 2), 4.2))
    no_baseline = _png(plots.leaderboard_plot(_board().drop(columns="majority")))
    assert no_baseline.size == img.size


def test_whiskers_are_zero_where_the_interval_is_unknown():
    heights = np.array([0.5, 0.7])
    err = plots._yerr(heights, pd.Series([0.4, NAN]), pd.Series([0.55, NAN]))
    assert err.tolist() == [[pytest.approx(0.1), 0.0], [pytest.approx(0.05), 0.0]]
    # an interval that does not hold its mean draws no negative whisker
    inverted = plots._yerr(np.array([0.5]), pd.Series([0.6]), pd.Series([0.7]))
    assert inverted[0, 0] == 0.0 and inverted[1, 0] == pytest.approx(0.2)


def test_bar_labels_put_the_arm_and_its_shares_on_their_own_lines():
    assert plots._bar_label("fpb", NAN, 0.0, 0.0) == "fpb"
    assert plots._bar_label("fpb", "all", 0.0, 0.0) == "fpb\nall"
    assert plots._bar_label("fpb", "all", 0.1, 0.05) == "fpb\nall\n+ general 0.1, math 0.05"


def test_png_bytes_of_an_empty_figure():
    from matplotlib.figure import Figure

    img = _png(plots.png_bytes(Figure(figsize=(1, 1))))
    assert img.size == (plots.DPI, plots.DPI)
