"""Compare training runs (GRPO vs λ-GRPO): seed-averaged learning curves, per-run summaries and tests.

Reads run folders (:mod:`prm_probe.core.runs`: ``config.json``, ``metrics.jsonl``, ``validation.jsonl``, written
by :func:`prm_probe.training.trainer.train`, or for TRL runs by
:class:`~prm_probe.integrations.trl.record.RunRecordCallback`), pools the runs of each algorithm as its seeds,
and measures the paper's claim that λ-GRPO "reaches peak performance more rapidly"
(docs/science.md §7.3; the paper shows no curves or step counts).

Definitions, on one run's curve of ``(step, value)`` points (missing values dropped):

* ``peak``: the largest value; ``peak_step``: the first step at which it is reached.
* ``step_to_95``: the first step whose value is >= ``peak - 0.05 * |peak|``. For a positive peak this is 95 % of
  the peak; for a negative peak (e.g. a mean reward in [-1, 1]) the threshold lies 5 % of the peak's magnitude
  below it; for a zero peak the threshold is the peak itself, so a flat curve reaches it at its first step.
  Always ``step_to_95 <= peak_step``.
* ``final``: the value at the last step.
* ``auc``: the trapezoid area under the curve over steps, divided by the step span (last - first step): the
  curve's mean level, in the metric's units. A single-point curve has ``auc`` equal to its value.
* bootstrap band: an algorithm's runs are its seeds. Each of ``n_boot`` resamples draws that many seeds with
  replacement (whole curves, so a run's steps stay together) and takes, at each step, the mean over the drawn
  seeds that have a value there; the band is the 2.5 and 97.5 percentiles of these means (percentile interval),
  from a numpy Generator seeded with ``(seed, algorithm index)``.

* paired tests (``paired=True``, ``prm-probe compare --paired``): the runs of one seed, one per algorithm, are a
  pair (the built-in trainer gives them the same initial weights, data order and first samples). Per quantity:
  the mean difference B − A over the pairs with a percentile bootstrap 95 % interval, and the two-sided exact
  Wilcoxon signed-rank test with n after zero differences and the smallest p those pairs allow
  (:mod:`prm_probe.views.statistics`). ``same_first_step`` counts the pairs whose first logged step has the same
  mean reward and completion length in both runs: fewer than all means those pairs did not sample alike before
  the first update (another data order, start or sampler), and the pairing is weaker than the design assumes.

Not done here: reading rollouts (see :mod:`prm_probe.core.stats`), corrections for multiple comparisons, and
drawing (figures come from :mod:`prm_probe.views.plots`). scipy and matplotlib are imported lazily.
"""

from __future__ import annotations

import itertools
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prm_probe.core.runs import (
    MATCHED_SETTINGS,
    Labels,
    Run,
    algorithm_label,
    config_differences,
    describe_differences,
    flat_settings,
    load_run,
    setting_of,
    task_differences,
)
from prm_probe.errors import CheckpointError, ConfigError, close_matches

__all__ = ["MATCHED_SETTINGS", "OVERLAP_METRICS", "QUANTITIES", "Run", "RunComparison", "algorithm_label",
           "compare_runs", "config_differences", "curve_summary", "hedges_g", "load_run"]

log = logging.getLogger(__name__)

OVERLAP_METRICS = ("path_depth_mean", "intermediate_proportion_mean", "nontrivial_fraction")
QUANTITIES = ("peak", "step_to_95", "final", "auc")
#: First-step statistics that depend only on the sampling before any update: equal in both runs of a true pair.
FIRST_STEP = ("reward_mean", "completion_length_mean")
PAIRED_COLUMNS = ["metric", "quantity", "algorithm_a", "algorithm_b", "pairs", "mean_a", "mean_b", "difference",
                  "difference_lower", "difference_upper", "b_higher", "wilcoxon_n", "wilcoxon_p", "wilcoxon_floor",
                  "same_first_step", "note"]
CURVE_COLUMNS = ("metric", "algorithm", "step", "mean", "lower", "upper", "n_seeds")
_POOLING_EXEMPT = ("seed", "run_id", "device", "schedule.")


def curve_summary(steps: Sequence[float], values: Sequence[float]) -> dict[str, float]:
    """Summarise one curve: ``peak``, ``peak_step``, ``step_to_95``, ``final``, ``auc`` (module docstring).

    Args:
        steps: increasing steps, shape (S,).
        values: the metric at those steps, shape (S,), no NaN. An empty curve gives NaN everywhere.

    Example:
        >>> s = curve_summary([0, 10, 20, 30], [0.0, 0.5, 1.0, 0.8])
        >>> s["peak"], s["peak_step"], s["step_to_95"], s["final"], round(s["auc"], 4)
        (1.0, 20.0, 20.0, 0.8, 0.6333)
    """
    x, y = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    if not y.size:
        return dict.fromkeys(("peak", "peak_step", "step_to_95", "final", "auc"), float("nan"))
    top = int(np.argmax(y))
    peak = float(y[top])
    reach = int(np.argmax(y >= peak - 0.05 * abs(peak)))
    span = x[-1] - x[0]
    auc = float(np.trapezoid(y, x) / span) if span > 0 else float(y.mean())
    return {"peak": peak, "peak_step": float(x[top]), "step_to_95": float(x[reach]), "final": float(y[-1]),
            "auc": auc}


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Hedges' g of ``b`` against ``a``: (mean b − mean a) / pooled sd, times J = 1 − 3 / (4(n_a + n_b) − 9).

    The pooled sd uses n − 1 denominators. NaN when n_a + n_b < 3 or the pooled sd is 0.

    Example:
        >>> round(hedges_g([1, 2, 3], [2, 3, 4]), 4)
        0.8
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    df = x.size + y.size - 2
    if x.size < 1 or y.size < 1 or df < 1:
        return float("nan")
    sd = float(np.sqrt((((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()) / df))
    return float((y.mean() - x.mean()) / sd * (1 - 3 / (4 * (x.size + y.size) - 9))) if sd > 0 else float("nan")


def _two_sample(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    from scipy import stats

    nan = float("nan")
    out: dict[str, Any] = {"n_a": a.size, "n_b": b.size, "mean_a": a.mean() if a.size else nan,
                           "mean_b": b.mean() if b.size else nan, "welch_t": nan, "welch_p": nan,
                           "mannwhitney_u": nan, "mannwhitney_p": nan, "hedges_g": hedges_g(a, b), "note": ""}
    out["difference"] = out["mean_b"] - out["mean_a"]
    if min(a.size, b.size) < 2:
        out["note"] = "fewer than 2 runs per algorithm: no test"
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if a.var() == 0 and b.var() == 0:
            out["note"] = "no spread within either algorithm: Welch t undefined"
        else:
            res = stats.ttest_ind(b, a, equal_var=False)
            out["welch_t"], out["welch_p"] = float(res.statistic), float(res.pvalue)
        res = stats.mannwhitneyu(b, a, alternative="two-sided")
        out["mannwhitney_u"], out["mannwhitney_p"] = float(res.statistic), float(res.pvalue)
    return out


def _bootstrap(matrix: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Mean, 95 % percentile band and seed count per column of a (runs, steps) matrix with NaN gaps."""
    present = ~np.isnan(matrix)
    filled = np.where(present, matrix, 0.0)
    counts = rng.multinomial(matrix.shape[0], np.full(matrix.shape[0], 1 / matrix.shape[0]), size=n_boot)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(matrix, axis=0)
        boot = (counts @ filled) / (counts @ present)  # (n_boot, steps); NaN where no drawn seed has a value
        lower, upper = np.nanpercentile(boot, [2.5, 97.5], axis=0)
    return mean, lower, upper, present.sum(axis=0)


class RunComparison:
    """Runs of one experiment grouped by algorithm, with curves, per-run summaries and two-sample tests.

    Build it with :func:`compare_runs`. Every frame is tidy (one row per observation, singular column names).
    ``algorithms`` lists the labels with ``GRPO`` first, then in order of appearance; tests report B − A for
    every pair, A before B in that order (so λ-GRPO − GRPO).
    """

    def __init__(self, runs: Sequence[Run], *, metric: str = "val_accuracy", n_boot: int = 2000, seed: int = 0,
                 skipped: Sequence[tuple[str, str]] = (), differences: Mapping[str, list[Any]] | None = None,
                 paired: bool = False):
        if not runs:
            raise CheckpointError("no runs to compare; expected at least one readable run folder; check the paths")
        if n_boot < 1:
            raise ConfigError(f"n_boot is {n_boot}; expected >= 1 bootstrap resample; use e.g. 2000")
        self.runs = list(runs)
        self.metric, self.n_boot, self.seed = metric, int(n_boot), int(seed)
        self.skipped, self.differences = list(skipped), dict(differences or {})
        self.paired = bool(paired)
        self.available = set().union(*(r.columns() for r in self.runs))
        seen = list(dict.fromkeys(r.algorithm for r in self.runs))
        self.algorithms = sorted(seen, key=lambda a: (a != "GRPO", seen.index(a)))
        self._check(metric)
        if self.paired:
            self._check_pairs()
        points = max(len(r.values(metric)) for r in self.runs)
        if points < 2:
            log.warning("metric '%s' has %d value(s) per run (runs that validate only at the end): peaks, steps to "
                        "95 %% and curves reduce to that one point; compare a metric logged every step (--metric "
                        "reward_mean) or train with --val-every N", metric, points)

    def __len__(self) -> int:
        return len(self.runs)

    def __repr__(self) -> str:
        counts = {a: sum(r.algorithm == a for r in self.runs) for a in self.algorithms}
        return f"RunComparison(runs={len(self.runs)}, algorithms={counts}, metric={self.metric!r})"

    def _check(self, metric: str) -> None:
        if metric not in self.available:
            names = sorted(c for c in self.available if not c.startswith("time_"))
            raise ConfigError(f"metric '{metric}' is in none of the {len(self.runs)} runs; "
                              f"{close_matches(metric, names)}expected one of {', '.join(names)}; "
                              "pick one with --metric")

    def _check_pairs(self) -> None:
        """Paired tests need one run per algorithm and seed; two runs of one seed and algorithm are ambiguous."""
        seen: dict[tuple[str, int], Run] = {}
        for r in self.runs:
            if (r.algorithm, r.seed) in seen:
                raise ConfigError(f"runs '{seen[r.algorithm, r.seed].path}' and '{r.path}' are both {r.algorithm} with "
                                  f"seed {r.seed}; expected one run per algorithm and seed for paired tests; "
                                  "compare them without --paired, or name them apart with --label")
            seen[r.algorithm, r.seed] = r

    def _same_first_step(self, a: str, b: str, seeds: Sequence[int]) -> int:
        """How many of the ``seeds`` have runs of ``a`` and ``b`` whose first logged step agrees on
        :data:`FIRST_STEP` (the statistics either logs)."""
        by = {(r.algorithm, r.seed): r for r in self.runs}
        same = 0
        for seed in seeds:
            first = []
            for algorithm in (a, b):
                m = by[algorithm, seed].metrics
                first.append(m.sort_values("step").iloc[0] if len(m) and "step" in m else None)
            keys = [k for k in FIRST_STEP if first[0] is not None and first[1] is not None
                    and k in first[0] and k in first[1]]
            if keys and all(first[0][k] == first[1][k] for k in keys):
                same += 1
        return same

    def _matrix(self, metric: str, runs: Sequence[Run]) -> tuple[np.ndarray, np.ndarray]:
        frames = [r.values(metric).assign(run=i) for i, r in enumerate(runs)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return np.empty(0, dtype=np.int64), np.empty((len(runs), 0))
        wide = pd.concat(frames).pivot(index="run", columns="step", values="value").reindex(range(len(runs)))
        return wide.columns.to_numpy(dtype=np.int64), wide.to_numpy(dtype=float)

    def curves(self, metric: str | None = None) -> pd.DataFrame:
        """Mean curve per algorithm over its seeds with a bootstrap 95 % band (module docstring).

        Returns:
            Columns ``metric``, ``algorithm``, ``step``, ``mean``, ``lower``, ``upper``, ``n_seeds`` (seeds with a
            value at that step; steps where some seeds lack one use the others).
        """
        metric = metric or self.metric
        self._check(metric)
        parts = []
        for k, algorithm in enumerate(self.algorithms):
            steps, matrix = self._matrix(metric, [r for r in self.runs if r.algorithm == algorithm])
            if not steps.size:
                continue
            mean, lower, upper, n = _bootstrap(matrix, self.n_boot, np.random.default_rng([self.seed, k]))
            parts.append(pd.DataFrame({"metric": metric, "algorithm": algorithm, "step": steps, "mean": mean,
                                       "lower": lower, "upper": upper, "n_seeds": n.astype(np.int64)}))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CURVE_COLUMNS))

    def overlap(self, metric_names: Sequence[str] = OVERLAP_METRICS) -> pd.DataFrame:
        """Curves (as :meth:`curves`, stacked, ``metric`` column) of the live overlap statistics the runs hold."""
        parts = [self.curves(m) for m in metric_names if m in self.available]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(CURVE_COLUMNS))

    def run_summary(self, metric: str | None = None) -> pd.DataFrame:
        """One row per run: ``run``, ``path``, ``algorithm``, ``seed``, ``metric``, ``n_points`` and the
        quantities ``peak``, ``peak_step``, ``step_to_95``, ``final``, ``auc`` of :func:`curve_summary`."""
        metric = metric or self.metric
        self._check(metric)
        rows = []
        for r in self.runs:
            curve = r.values(metric)
            rows.append({"run": r.name, "path": str(r.path), "algorithm": r.algorithm, "seed": r.seed,
                         "metric": metric, "n_points": len(curve),
                         **curve_summary(curve["step"].to_numpy(), curve["value"].to_numpy())})
        return pd.DataFrame(rows)

    def tests(self, metric: str | None = None) -> pd.DataFrame:
        """Two-sample tests of each summary quantity between each pair of algorithms (runs are the samples).

        Returns:
            One row per (pair, quantity): ``metric``, ``quantity``, ``algorithm_a``, ``algorithm_b``, ``n_a``,
            ``n_b``, ``mean_a``, ``mean_b``, ``difference`` (B − A), ``welch_t``/``welch_p`` (Welch's t-test,
            unequal variances), ``mannwhitney_u``/``mannwhitney_p`` (two-sided, U of B), ``hedges_g`` (B vs A,
            small-sample corrected) and ``note``. With fewer than 2 runs on a side p-values are NaN, with a note.
        """
        summary = self.run_summary(metric)
        rows = []
        for a, b in itertools.combinations(self.algorithms, 2):
            for q in QUANTITIES:
                xa = summary.loc[summary["algorithm"] == a, q].dropna().to_numpy(dtype=float)
                xb = summary.loc[summary["algorithm"] == b, q].dropna().to_numpy(dtype=float)
                rows.append({"metric": summary["metric"].iat[0], "quantity": q, "algorithm_a": a,
                             "algorithm_b": b, **_two_sample(xa, xb)})
        columns = ["metric", "quantity", "algorithm_a", "algorithm_b", "n_a", "n_b", "mean_a", "mean_b",
                   "difference", "welch_t", "welch_p", "mannwhitney_u", "mannwhitney_p", "hedges_g", "note"]
        return pd.DataFrame(rows, columns=columns)

    def paired_tests(self, metric: str | None = None) -> pd.DataFrame:
        """Paired tests of each summary quantity between each pair of algorithms: the runs of one seed are a pair
        (module docstring); a seed with a run of only one of the two algorithms is left out, with a note.

        Returns:
            One row per (pair of algorithms, quantity): ``metric``, ``quantity``, ``algorithm_a``, ``algorithm_b``,
            ``pairs`` (seeds with both values), ``mean_a``, ``mean_b``, ``difference`` (mean of B − A),
            ``difference_lower``/``difference_upper`` (bootstrap 95 % interval of that mean), ``b_higher`` (pairs
            with B > A), ``wilcoxon_n`` (non-zero differences), ``wilcoxon_p`` (exact, two-sided),
            ``wilcoxon_floor`` (the smallest p with that n), ``same_first_step`` (pairs whose first logged step
            agrees) and ``note``.

        Raises:
            ConfigError: two runs share an algorithm and a seed.
        """
        from prm_probe.views.statistics import bootstrap_mean_ci, paired_wilcoxon

        self._check_pairs()
        summary = self.run_summary(metric)
        rows = []
        for a, b in itertools.combinations(self.algorithms, 2):
            side = {x: summary[summary["algorithm"] == x].set_index("seed") for x in (a, b)}
            seeds = sorted(set(side[a].index) & set(side[b].index))
            alone = sorted(set(side[a].index) ^ set(side[b].index))
            same = self._same_first_step(a, b, seeds)
            for q in QUANTITIES:
                both = pd.DataFrame({"a": side[a].loc[seeds, q], "b": side[b].loc[seeds, q]}).dropna()
                diff = (both["b"] - both["a"]).to_numpy(dtype=float)
                test = paired_wilcoxon(both["a"], both["b"])
                lower, upper = bootstrap_mean_ci(diff, seed=self.seed)
                notes = []
                if alone:
                    notes.append(f"seeds without a pair left out: {', '.join(map(str, alone))}")
                if len(both) < 2:
                    notes.append("fewer than 2 pairs: no interval")
                if same < len(seeds):
                    notes.append(f"{len(seeds) - same} pair(s) sampled different first steps")
                rows.append({"metric": summary["metric"].iat[0], "quantity": q, "algorithm_a": a, "algorithm_b": b,
                             "pairs": len(both), "mean_a": both["a"].mean(), "mean_b": both["b"].mean(),
                             "difference": diff.mean() if diff.size else float("nan"),
                             "difference_lower": lower, "difference_upper": upper,
                             "b_higher": int((diff > 0).sum()), "wilcoxon_n": test["n"], "wilcoxon_p": test["p"],
                             "wilcoxon_floor": test["floor"], "same_first_step": same, "note": "; ".join(notes)})
            if same < len(seeds):
                log.warning("%d of %d %s/%s pairs sampled different first steps (%s): they do not share their start, "
                            "so the pairing is weaker than a paired test assumes", len(seeds) - same, len(seeds), a,
                            b, ", ".join(FIRST_STEP))
        return pd.DataFrame(rows, columns=PAIRED_COLUMNS)

    def summary(self, metric: str | None = None) -> dict[str, Any]:
        """Headline numbers, as :meth:`OverlapStats.summary() <prm_probe.core.stats.OverlapStats.summary>` gives
        them for a log: ``metric``, ``runs``, ``runs[<algorithm>]``, the mean over seeds of each summary quantity
        per algorithm (``final[λ-GRPO]``, ...), and for each pair of algorithms the difference B − A of each
        quantity and its Welch p (``final: λ-GRPO − GRPO``, ``final: welch_p``, ...); with ``paired``, also the
        pairs and the paired Wilcoxon p of each quantity (``final: paired pairs``, ``final: wilcoxon_p``)."""
        metric = metric or self.metric
        runs, tests = self.run_summary(metric), self.tests(metric)
        out: dict[str, Any] = {"metric": metric, "runs": len(self.runs)}
        for a in self.algorithms:
            part = runs[runs["algorithm"] == a]
            out[f"runs[{a}]"] = len(part)
            out.update({f"{q}[{a}]": float(part[q].mean()) for q in QUANTITIES})
        for t in tests.itertuples():
            out[f"{t.quantity}: {t.algorithm_b} − {t.algorithm_a}"] = float(t.difference)
            out[f"{t.quantity}: welch_p"] = float(t.welch_p)
        if self.paired:
            for t in self.paired_tests(metric).itertuples():
                out[f"{t.quantity}: paired pairs"] = int(t.pairs)
                out[f"{t.quantity}: wilcoxon_p"] = float(t.wilcoxon_p)
        return out

    def frame(self, by: str = "runs", metric: str | None = None) -> pd.DataFrame:
        """``runs`` (:meth:`run_summary`), ``tests``, ``curves`` or ``overlap``, as the other result objects'
        ``frame(by)``."""
        frames = {"runs": self.run_summary, "tests": self.tests, "curves": self.curves}
        if by == "overlap":
            return self.overlap()
        if by not in frames:
            raise ConfigError(f"by={by!r}; expected one of runs, tests, curves, overlap; fix it")
        return frames[by](metric)

    def to_markdown(self, metric: str | None = None) -> str:
        """A Markdown report: runs, per-algorithm results (mean ± sd over seeds), tests, definitions, skips."""
        metric = metric or self.metric
        summary, tests = self.run_summary(metric), self.tests(metric)
        first = self.runs[0].config
        counts = ", ".join(f"{a}: {sum(r.algorithm == a for r in self.runs)}" for a in self.algorithms)
        lines = [f"# Run comparison: {metric}", "",
                 f"{len(self.runs)} runs ({counts}); task {setting_of(first, 'task.name')}, model "
                 f"{setting_of(first, 'model.name')}, G = {setting_of(first, 'sampling.group_size')}, "
                 f"{setting_of(first, 'steps')} steps."]
        if self.differences:
            lines.append(f"Settings differ (compared with --force): {describe_differences(self.differences)}.")
        lines += ["", "## Per algorithm (mean ± sd over seeds)", ""]
        head = ["algorithm", "runs", "peak", "peak_step", "step_to_95", "final", "auc"]
        body = []
        for a in self.algorithms:
            part = summary[summary["algorithm"] == a]
            body.append([a, str(len(part)), *(_mean_sd(part[q], 1 if "step" in q else 3) for q in head[2:])])
        lines += _md_table(head, body)
        lines += ["", "## Tests (B − A; Welch's t-test, two-sided Mann–Whitney U, Hedges' g)", ""]
        head = ["quantity", "A", "B", "mean A", "mean B", "B − A", "Welch t", "Welch p", "MW U", "MW p", "g", "note"]
        body = [[t.quantity, t.algorithm_a, t.algorithm_b, *(_num(v) for v in (
            t.mean_a, t.mean_b, t.difference, t.welch_t, t.welch_p, t.mannwhitney_u, t.mannwhitney_p, t.hedges_g)),
            t.note] for t in tests.itertuples()]
        lines += _md_table(head, body) if body else ["(one algorithm only: nothing to test)"]
        if self.paired:
            lines += ["", "## Paired tests (runs of one seed are a pair; B − A; exact two-sided Wilcoxon signed-rank, "
                      "bootstrap 95 % interval of the mean difference)", ""]
            head = ["quantity", "A", "B", "pairs", "mean A", "mean B", "B − A [95 % CI]", "B higher", "n after ties",
                    "Wilcoxon p", "smallest p", "same first step", "note"]
            body = [[t.quantity, t.algorithm_a, t.algorithm_b, str(t.pairs), _num(t.mean_a), _num(t.mean_b),
                     f"{_num(t.difference)} [{_num(t.difference_lower)}, {_num(t.difference_upper)}]",
                     f"{t.b_higher} of {t.pairs}", str(t.wilcoxon_n), _num(t.wilcoxon_p), _num(t.wilcoxon_floor),
                     f"{t.same_first_step} of {t.pairs}", t.note] for t in self.paired_tests(metric).itertuples()]
            lines += _md_table(head, body) if body else ["(one algorithm only: nothing to test)"]
        lines += ["", "peak: largest value (peak_step: first step reaching it); step_to_95: first step with value ≥ "
                  "peak − 0.05·|peak|; final: last value; auc: trapezoid area over steps / step span (mean level)."]
        if self.skipped:
            lines += ["", "## Skipped runs", "", *(f"- {p}: {why}" for p, why in self.skipped)]
        return "\n".join(lines) + "\n"

    def write(self, out_dir: str | os.PathLike, metric: str | None = None, *, figures: bool = True) -> list[Path]:
        """Write ``summary.md``, ``runs.csv``, ``tests.csv`` and ``curves.csv`` (the metric's curves stacked with
        :meth:`overlap`; with ``paired`` also ``paired_tests.csv``) atomically into ``out_dir``, plus
        (``figures``) ``curves_<metric>`` and ``overlap`` figures, PNG and PDF. Returns the written paths."""
        from prm_probe.core.files import write_table, write_text_atomic

        metric = metric or self.metric
        out = Path(out_dir)
        curve, overlap = self.curves(metric), self.overlap()
        written = [write_text_atomic(out / "summary.md", self.to_markdown(metric))]
        frames = {"runs.csv": self.run_summary(metric), "tests.csv": self.tests(metric),
                  "curves.csv": pd.concat([curve, overlap], ignore_index=True) if len(overlap) else curve}
        if self.paired:
            frames["paired_tests.csv"] = self.paired_tests(metric)
        written += [write_table(frame, out / name) for name, frame in frames.items()]
        return written + (_write_figures(out, metric, curve, overlap) if figures else [])


def _write_figures(out: Path, metric: str, curve: pd.DataFrame, overlap: pd.DataFrame) -> list[Path]:
    """``curves_<metric>`` and ``overlap`` figures (PNG + PDF) drawn with :func:`prm_probe.views.plots.plot_curves`."""
    from prm_probe.views.plots import plot_curve_panels, save_figure, theme

    panels = {f"curves_{metric}": [(metric, curve)]}
    if len(overlap):
        panels["overlap"] = [(m, overlap[overlap["metric"] == m]) for m in dict.fromkeys(overlap["metric"])]
    written: list[Path] = []
    with theme():
        for stem, data in panels.items():
            written += [Path(p) for p in save_figure(plot_curve_panels(data), out / f"{stem}.png")]
    return written


def _num(value: Any) -> str:
    return "n/a" if value != value else f"{value:.3g}" if abs(value) < 1e-3 and value else f"{value:.3f}"


def _mean_sd(column: pd.Series, digits: int) -> str:
    x = column.dropna().to_numpy(dtype=float)
    if not x.size:
        return "n/a"
    return f"{x.mean():.{digits}f}" + (f" ± {x.std(ddof=1):.{digits}f}" if x.size > 1 else "")


def _md_table(head: list[str], body: list[list[str]]) -> list[str]:
    rows = [head, ["---"] * len(head), *body]
    return ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def compare_runs(paths: Sequence[str | os.PathLike], labels: Labels | None = None, force: bool = False,
                 metric: str = "val_accuracy", n_boot: int = 2000, seed: int = 0,
                 paired: bool = False) -> RunComparison:
    """Load run folders and build a :class:`RunComparison`.

    Args:
        paths: run folders (duplicates ignored). An unreadable one is logged, recorded in ``skipped`` as
            ``(path, reason)`` and left out.
        labels: ``NAME -> GLOB`` pairs naming algorithms (see :func:`load_run`).
        force: compare runs whose :data:`MATCHED_SETTINGS` differ (logged, and noted in the report).
        metric: default metric of the comparison's methods.
        n_boot: bootstrap resamples per band.
        seed: seed of the bootstrap generators.
        paired: also test the runs of one seed as pairs (:meth:`RunComparison.paired_tests`).

    Raises:
        CheckpointError: no run could be read.
        ConfigError: the runs differ in a matched setting and ``force`` is False, ``metric`` is in no run, or
            (``paired``) two runs share an algorithm and a seed.
    """
    runs, skipped = [], []
    for path in dict.fromkeys(os.fspath(p) for p in paths):
        try:
            runs.append(load_run(path, labels))
        except CheckpointError as exc:
            log.warning("skipping a run: %s", exc)
            skipped.append((path, str(exc)))
    if not runs:
        reason = f" (first: {skipped[0][1]})" if skipped else ""
        raise CheckpointError(f"none of the {len(skipped)} run folder(s) could be read{reason}")
    differences = {**config_differences(runs), **task_differences(runs)}
    if differences and not force:
        raise ConfigError(f"runs differ in {describe_differences(differences)}; expected the same settings apart from "
                          "algorithm and seed, and the same task for the runs of one seed; pass --force to compare "
                          "anyway")
    if differences:
        log.warning("comparing runs that differ in %s (--force)", describe_differences(differences))
    for algorithm in dict.fromkeys(r.algorithm for r in runs):
        group = [r for r in runs if r.algorithm == algorithm]
        keys = sorted(k for k in set().union(*(flat_settings(r.config) for r in group))
                      if not k.startswith(_POOLING_EXEMPT))
        if mixed := config_differences(group, keys):
            log.warning("runs labelled %s differ in %s but are pooled as its seeds; separate them with --label",
                        algorithm, describe_differences(mixed))
    return RunComparison(runs, metric=metric, n_boot=n_boot, seed=seed, skipped=skipped, differences=differences,
                         paired=paired)
