"""Mixture search, the pure part: the space of mixtures, round 0's space-filling set, the
surrogate fitted to finished trials and the mixtures it proposes next.

A point of the space is a `Mixture`: task weights on the simplex (weights below
`search.min_weight` dropped, the rest renormalised, rounded to 3 decimals), plus the general
and math shares and the data fraction where the search ranges over them.

- Round 0: a Latin hypercube (`scipy.stats.qmc.LatinHypercube`, centred discrepancy
  optimised up to 256 points) in [0, 1)^d. The first k coordinates become task weights through the
  exponential spacing of the unit simplex (w_i = -log u_i / sum_j -log u_j: uniform points
  of the cube map to Dirichlet(1) points, so space-filling in the cube is space-filling on
  the simplex); the others scale into their ranges.
- Surrogate: per evaluated task, validation score from features [log(w_i + 0.01) for each
  task, general, math, log(fraction)] (the log-weights of RegMix and the Data Mixing Laws).
  `ridge`: scikit-learn's `RidgeCV` on standardised features (alpha by leave-one-out);
  `gp`: `GaussianProcessRegressor` (Matern 5/2 + white noise, normalised targets).
- Proposals: as RegMix does, the surrogate scores many candidate mixtures (another Latin
  hypercube of `search.candidates` points) and the best by the objective are taken
  greedily, each at least `MIN_DISTANCE` (L1 on the weights plus the other coordinates)
  from every mixture already run or proposed. `gp` ranks by the upper confidence bound of
  the objective (mean + 1 sd), `ridge` by its prediction.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MIN_DISTANCE = 0.1  # proposals closer than this (L1) to a run mixture are not proposed
LOG_EPS = 0.01  # log(w + eps): a weight of 0 is a finite feature
UCB_KAPPA = 1.0
OPTIMISED_DESIGN = 256  # designs up to this many points get a discrepancy-optimised LHS


@dataclass(frozen=True)
class Mixture:
    weights: tuple[tuple[str, float], ...]  # (task, weight > 0), sorted by task, sum 1
    general: float
    math: float
    fraction: float

    @property
    def name(self) -> str:
        """A short stable name from the mixture itself (trial ids and adapter names)."""
        blob = json.dumps([list(self.weights), self.general, self.math, self.fraction])
        return "mix-" + hashlib.sha256(blob.encode()).hexdigest()[:8]

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"weights": [list(w) for w in self.weights], "name": self.name}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mixture:
        w = tuple((str(t), float(x)) for t, x in d["weights"])
        return cls(w, float(d["general"]), float(d["math"]), float(d["fraction"]))

    def weight(self, task: str) -> float:
        return dict(self.weights).get(task, 0.0)


@dataclass(frozen=True)
class Space:
    tasks: tuple[str, ...]  # trainable tasks mixed, sorted
    general: tuple[float, float]  # (low, high); equal: fixed
    math: tuple[float, float]
    fraction: tuple[float, float]
    min_weight: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Space:
        pair = lambda v: (float(v[0]), float(v[1]))  # noqa: E731
        return cls(
            tuple(d["tasks"]), pair(d["general"]), pair(d["math"]), pair(d["fraction"]),
            float(d["min_weight"]),
        )  # fmt: skip

    @property
    def dims(self) -> int:
        return len(self.tasks) + sum(hi > lo for lo, hi in self._ranges())

    def _ranges(self) -> list[tuple[float, float]]:
        return [self.general, self.math, self.fraction]

    def from_unit(self, u: np.ndarray) -> Mixture:
        """The mixture at a point of [0, 1)^dims."""
        k = len(self.tasks)
        e = -np.log(np.clip(u[:k], 1e-12, 1 - 1e-12))
        w = e / e.sum()
        keep = w >= self.min_weight
        if not keep.any():
            keep[int(np.argmax(w))] = True
        w = np.where(keep, w, 0.0)
        w = _rounded_simplex(w / w.sum())
        weights = tuple((t, float(x)) for t, x in zip(self.tasks, w, strict=True) if x > 0)
        rest, i = [], k
        for lo, hi in self._ranges():
            if hi > lo:
                rest.append(round(lo + float(u[i]) * (hi - lo), 2))
                i += 1
            else:
                rest.append(lo)
        general, math_share, fraction = rest
        if general + math_share >= 0.95:  # the task rows must stay the larger part
            scale = 0.9 / (general + math_share)
            general, math_share = round(general * scale, 2), round(math_share * scale, 2)
        return Mixture(weights, general, math_share, max(fraction, 0.01))

    def to_features(self, m: Mixture) -> np.ndarray:
        w = [math.log(m.weight(t) + LOG_EPS) for t in self.tasks]
        return np.array([*w, m.general, m.math, math.log(m.fraction)], dtype=float)

    def distance(self, a: Mixture, b: Mixture) -> float:
        dw = sum(abs(a.weight(t) - b.weight(t)) for t in self.tasks)
        span = [max(hi - lo, 1e-9) for lo, hi in self._ranges()]
        other = (a.general - b.general, a.math - b.math, a.fraction - b.fraction)
        return dw + sum(abs(d) / s for d, s in zip(other, span, strict=True) if s > 1e-9)


def _rounded_simplex(w: np.ndarray, digits: int = 3) -> np.ndarray:
    """Weights rounded to `digits` that still sum to 1 (the largest absorbs the rest)."""
    r = np.round(w, digits)
    r[int(np.argmax(r))] += round(1.0 - float(r.sum()), digits)
    return np.round(r, digits)


def latin_points(n: int, dims: int, seed: int) -> np.ndarray:
    """A Latin hypercube; a design of a few hundred points also has its centred
    discrepancy optimised (which costs O(n^2): 22 s for the 4096 candidates, which
    therefore stay a plain hypercube)."""
    from scipy.stats import qmc

    optimization = "random-cd" if n <= OPTIMISED_DESIGN else None
    return qmc.LatinHypercube(d=dims, optimization=optimization, rng=seed).random(n)


def space_filling(space: Space, n: int, seed: int) -> list[Mixture]:
    """Round 0: `n` distinct mixtures spread over the space."""
    out: list[Mixture] = []
    tries = 0
    while len(out) < n and tries < 20:
        for u in latin_points(max(n, 2) * (2 if tries else 1), space.dims, seed + tries):
            m = space.from_unit(u)
            if m not in out and len(out) < n:
                out.append(m)
        tries += 1
    return out


@dataclass
class Surrogate:
    """Per-task validation score as a function of the mixture."""

    kind: str
    space: Space
    tasks: list[str]  # evaluated tasks, one model each
    models: list[Any]

    @classmethod
    def fit(
        cls, kind: str, space: Space, seen: list[tuple[Mixture, dict[str, float]]]
    ) -> Surrogate:
        """`seen`: (mixture, {task: validation score}) of every finished search trial
        (seeds of a mixture averaged by the caller)."""
        tasks = sorted({t for _, s in seen for t in s})
        x = np.stack([space.to_features(m) for m, _ in seen])
        models = []
        for task in tasks:
            rows = [i for i, (_, s) in enumerate(seen) if _finite(s.get(task))]
            y = np.array([seen[i][1][task] for i in rows], dtype=float)
            models.append(_fit_one(kind, x[rows], y))
        return cls(kind, space, tasks, models)

    def predict(
        self, mixtures: list[Mixture]
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Per task: predicted mean and standard deviation (0 for ridge)."""
        x = np.stack([self.space.to_features(m) for m in mixtures])
        mean, sd = {}, {}
        for task, model in zip(self.tasks, self.models, strict=True):
            mean[task], sd[task] = _predict_one(model, x)
        return mean, sd

    def objective(
        self, mixtures: list[Mixture], weights: dict[str, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted objective and its sd (tasks' errors taken as independent)."""
        mean, sd = self.predict(mixtures)
        n = len(mixtures)
        mu, var = np.zeros(n), np.zeros(n)
        for task, w in weights.items():
            if task in mean:
                mu += w * mean[task]
                var += (w * sd[task]) ** 2
        return mu, np.sqrt(var)


def _finite(v: Any) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _fit_one(kind: str, x: np.ndarray, y: np.ndarray) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(y) == 0:
        return None
    if np.ptp(y) == 0:
        return ("constant", float(y[0]))
    if kind == "gp":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0) * Matern(length_scale=np.ones(x.shape[1]), nu=2.5)
        kernel = kernel + WhiteKernel(0.01)
        gp = GaussianProcessRegressor(
            kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0
        )
        model = make_pipeline(StandardScaler(), gp)
    else:
        from sklearn.linear_model import RidgeCV

        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    import warnings

    with warnings.catch_warnings():  # few points: sklearn warns about kernel bounds
        warnings.simplefilter("ignore")
        model.fit(x, y)
    return model


def _predict_one(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    if model is None:
        return np.full(n, np.nan), np.zeros(n)
    if isinstance(model, tuple):
        return np.full(n, model[1]), np.zeros(n)
    last = model[-1]
    if hasattr(last, "kernel_"):
        mean, sd = last.predict(model[0].transform(x), return_std=True)
        return np.asarray(mean), np.asarray(sd)
    return np.asarray(model.predict(x)), np.zeros(n)


def propose(
    surrogate: Surrogate,
    weights: dict[str, float],
    taken: list[Mixture],
    n: int,
    candidates: int,
    seed: int,
) -> list[tuple[Mixture, float, dict[str, float]]]:
    """The next `n` mixtures: (mixture, predicted objective, predicted per-task scores),
    best first, none within MIN_DISTANCE of `taken` or of each other."""
    space = surrogate.space
    pool = list(
        dict.fromkeys(space.from_unit(u) for u in latin_points(candidates, space.dims, seed))
    )
    mu, sd = surrogate.objective(pool, weights)
    score = mu + (UCB_KAPPA * sd if surrogate.kind == "gp" else 0.0)
    per_task, _ = surrogate.predict(pool)
    chosen: list[tuple[Mixture, float, dict[str, float]]] = []
    for i in np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable"):
        m = pool[int(i)]
        near = [*taken, *(c[0] for c in chosen)]
        if any(space.distance(m, o) < MIN_DISTANCE for o in near):
            continue
        chosen.append((m, float(mu[i]), {t: float(v[i]) for t, v in per_task.items()}))
        if len(chosen) == n:
            break
    return chosen
