"""Regenerating the paper's evidence: the toy-tree and overlap-dynamics experiments, every figure, the demo.

Each driver runs its sweep (:mod:`prm_probe.experiments.sweeps`), writes its tables (CSV and Markdown) and raw data
next to the runs, and draws its figures (:mod:`prm_probe.views.plots`) into a figures folder. :func:`make_figures`
redraws every figure from data already on disk without training. :func:`demo` is the README's main command: a
reduced toy-tree comparison plus the overlap statistics and implied PRM of the bundled real log, with a short
report.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prm_probe.core.files import read_jsonl, write_text_atomic
from prm_probe.core.rollouts import BUNDLED_LOG
from prm_probe.core.runs import RunFolder, is_run_dir
from prm_probe.experiments.sweeps import (
    CELLS,
    FIGURE_CELL,
    calibrated_setting,
    calibration_specs,
    overlap_specs,
    run_outcomes,
    run_specs,
    target_curves,
    toy_tree_specs,
    toy_tree_table,
)

__all__ = ["BUNDLED_LOG", "TOY_PLANS", "ToyPlan", "demo", "log_figures", "make_figures", "overlap_experiment",
           "toy_tree_experiment"]

logger = logging.getLogger(__name__)


#: The learning rate of the overlap-dynamics stand-in (Adam), the tiny-gpt2 calibration's pick.
TOY_LR = 3e-4

#: The overlap-dynamics default task: a deep toy tree with a dense reward (share of T matched from the start).
DEEP_TREE = {"depth": 12, "reward": "prefix"}

Setting = tuple[str, float]  # (optimizer, learning rate)


@dataclass(frozen=True)
class ToyPlan:
    """How the toy-tree experiment runs for one model.

    Attributes:
        settings: the optimiser settings Table 1 runs at; empty: calibrate one on the no-trap control first.
        calibration: the grid the calibration tries (GRPO, no-trap control), when ``settings`` is empty.
        sensitivity: further settings run on the figure cell (n = 1, r_neg = −1.0) only.
        cells: the (n, r_neg) cells of Table 1 to run.
        seeds: seeds per cell and algorithm; ``calibration_seeds`` for each calibration setting.
        rollouts_every: write the rollout log every this many steps (0: never; the metrics hold the outcome).
        renormalised: settings at which the figure cell also runs λ-GRPO renormalised (divided by the summed
            weights), which separates λ-GRPO's re-weighting from its smaller total step.
    """

    settings: tuple[Setting, ...] = ()
    calibration: tuple[Setting, ...] = ()
    sensitivity: tuple[Setting, ...] = ()
    cells: tuple[tuple[int, float], ...] = CELLS
    seeds: int = 5
    calibration_seeds: int = 2
    rollouts_every: int = 1
    renormalised: tuple[Setting, ...] = ()


#: The plan of each model (another model or folder gets ``TOY_PLANS["default"]``). The tabular policy is cheap
#: (under a second a run with the lockstep engine), so it sweeps both optimisers over learning rates wide enough to
#: show where λ-GRPO's effect appears and where it vanishes, with 60 seeds (20 moved the headline cell's GRPO mean
#: from 0.06 to 0.12); the networks calibrate Adam on the no-trap control.
TOY_PLANS: dict[str, ToyPlan] = {
    "tabular": ToyPlan(settings=(("sgd", 0.1), ("sgd", 0.3), ("sgd", 1.0), ("sgd", 3.0), ("sgd", 10.0), ("sgd", 30.0),
                                 ("adam", 0.003), ("adam", 0.01), ("adam", 0.03), ("adam", 0.1), ("adam", 0.3),
                                 ("adam", 1.0)),
                       renormalised=(("sgd", 0.1), ("sgd", 0.3), ("sgd", 1.0), ("sgd", 3.0), ("sgd", 10.0),
                                     ("sgd", 30.0), ("adam", 0.01), ("adam", 0.1)),
                       seeds=60, rollouts_every=0),
    "tiny-gpt2": ToyPlan(calibration=(("adam", 1e-4), ("adam", 3e-4), ("adam", 1e-3), ("adam", 3e-3)),
                         sensitivity=(("adam", 1e-4), ("adam", 3e-4), ("adam", 1e-3), ("sgd", 0.01), ("sgd", 0.03),
                                      ("sgd", 0.1))),
    "smollm2-135m": ToyPlan(calibration=(("adam", 1e-5), ("adam", 3e-5), ("adam", 1e-4)), cells=(FIGURE_CELL,),
                            calibration_seeds=1),
    "default": ToyPlan(calibration=(("adam", 1e-5), ("adam", 1e-4), ("adam", 1e-3))),
}


def model_slug(model: str) -> str:
    """The folder name of a model's results: its name, or a folder's base name."""
    name = Path(model).name if ("/" in model or Path(model).is_dir()) else model
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def _fmt(column: str, x: object) -> str:
    if not isinstance(x, float | np.floating | int | np.integer):
        return str(x)
    if x != x:
        return "nan"
    if column in ("n", "seed", "seeds") or column.endswith("_converged") or column.startswith("n_"):
        return str(int(x))
    if column in ("r_neg", "lr"):
        return f"{float(x):g}"
    if column.startswith(("p_", "floor_")):
        return f"{float(x):.2g}"
    return f"{float(x):+.4f}" if "delta" in column else f"{float(x):.4f}"


def _md(frame, columns: Sequence[str]) -> str:
    columns = [c for c in columns if c in frame.columns]
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = ["| " + " | ".join(_fmt(c, r[c]) for c in columns) + " |" for _, r in frame.iterrows()]
    return head + "\n".join(rows) + "\n"


def _save(fig, path: Path) -> list[Path]:
    """Write a figure the experiments drew (PNG and PDF) and close it, so the next one starts on fresh axes."""
    from prm_probe.views.plots import save_figure

    return save_figure(fig, path, close=True)


def _ci(row, column: str, signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    lo, hi = row.get(f"{column}_lo"), row.get(f"{column}_hi")
    if lo is None or lo != lo:
        return fmt.format(row[column])
    return f"{fmt.format(row[column])} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _test(row, metric: str) -> str:
    p, n, floor = row.get(f"p_{metric}"), row.get(f"n_{metric}"), row.get(f"floor_{metric}")
    if n is None or n != n:
        return ""
    return f"{p:.2g} (n = {int(n)}, floor {floor:.2g})" if p == p else f"– (n = {int(n)})"


def outcome_markdown(frame, keys: Sequence[str]) -> str:
    """Table 1 (or a sensitivity sweep) from :func:`~prm_probe.experiments.sweeps.toy_tree_table` as Markdown: per
    group of ``keys``, each metric's mean over seeds with its 95 % bootstrap interval, the paired difference and
    its Wilcoxon test (n after dropping zero differences, and the smallest p that n allows), converged seeds."""
    from prm_probe.experiments.sweeps import OUTCOME_METRICS

    paper = "paper_GRPO" in frame.columns
    head = [*keys, *(["paper GRPO / λ-GRPO (freq50)"] if paper else []),
            "GRPO freq50", "λ-GRPO freq50", "Δ freq50", "p freq50",
            "GRPO final π(T)", "λ-GRPO final π(T)", "Δ final π(T)", "p final π(T)",
            "converged GRPO / λ-GRPO", "mass ratio", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [_fmt(k, r[k]) for k in keys]
        if paper:
            cells.append(f"{r['paper_GRPO']:.4f} / {r['paper_λ-GRPO']:.4f}")
        for metric in OUTCOME_METRICS:
            cells += [_ci(r, f"GRPO_{metric}"), _ci(r, f"λ-GRPO_{metric}"), _ci(r, f"delta_{metric}", True),
                      _test(r, metric)]
        cells += [f"{int(r['GRPO_converged'])} / {int(r['λ-GRPO_converged'])}", f"{r['mass_ratio']:.3f}",
                  str(int(r["seeds"]))]
        lines.append("| " + " | ".join(cells) + " |")
    legend = "; ".join(f"**{m}**: {label}" for m, (_, label) in OUTCOME_METRICS.items())
    return ("\n".join(lines) + "\n\n" + legend + ". Means over seeds with 95 % percentile-bootstrap intervals "
            "(10,000 resamples of seeds; Δ resamples the pairs λ-GRPO − GRPO of one seed); p: two-sided Wilcoxon "
            "signed-rank test of the pairs, n = pairs with a non-zero difference, floor = the smallest p that n "
            "allows; converged: seeds with final π(T) >= 0.5; mass ratio: λ-GRPO's mean Σ 1/|λ| / Σ 1.\n")


def toy_tree_experiment(out: str | os.PathLike, figures: str | os.PathLike | None = None, *,
                        model: str = "tiny-gpt2", seeds: int | None = None, steps: int = 250,
                        workers: int | None = None, setting: Setting | None = None, sensitivity: bool = True,
                        cells: Sequence[tuple[int, float]] | None = None, engine: str = "auto",
                        progress: bool = False) -> dict[str, Path]:
    """Run the toy-tree experiment (Table 1 and the sensitivity sweep) for ``model`` and write its results.

    Each model's runs and tables live in ``out/<model>/`` (:data:`TOY_PLANS` says what runs for which model);
    finished runs are skipped on a rerun and interrupted ones resume. Without ``setting``, a plan without fixed
    settings first calibrates one: GRPO on the no-trap control at each setting of its grid
    (``calibration.csv``; the highest mean target frequency wins). Writes into ``out/<model>/``: ``runs/``,
    ``calibration.csv``, ``outcomes.csv`` (one row per run: the per-seed outcomes, with its ``sweep``) and
    ``curves.csv.gz`` (target frequency and exact π(T) per run and step); then :func:`toy_tree_summary` combines
    every model found under ``out`` into the tables and figures in ``figures``.
    """
    out = Path(out)
    plan = TOY_PLANS.get(model, TOY_PLANS["default"])
    home = out / model_slug(model)
    n_seeds = seeds if seeds is not None else plan.seeds
    common = {"model": model, "steps": steps, "rollouts_every": plan.rollouts_every}
    if setting is not None:
        settings: tuple[Setting, ...] = (setting,)
    elif plan.settings:
        settings = plan.settings
    else:
        calib = calibration_specs(settings=plan.calibration, seeds=range(plan.calibration_seeds), **common)
        run_specs(calib, home, workers=workers, progress=progress, engine=engine)
        calib_out = run_outcomes(target_curves(calib, home), last=min(50, steps))
        calib_out.to_csv(home / "calibration.csv", index=False)
        settings = (calibrated_setting(calib_out),)
        logger.info("calibrated %s: %s lr %g", model, *settings[0])
    main = toy_tree_specs(settings=settings, cells=tuple(cells or plan.cells), seeds=range(n_seeds), **common)
    extra = [s for s in (plan.sensitivity if sensitivity else ()) if s not in settings]
    sens = toy_tree_specs(settings=extra, cells=(FIGURE_CELL,), seeds=range(n_seeds), prefix="sens", **common)
    renorm = toy_tree_specs(settings=plan.renormalised if sensitivity else (), cells=(FIGURE_CELL,),
                            seeds=range(n_seeds), prefix="renorm", algorithms=("renormalised",), **common)
    run_specs(main + sens + renorm, home, workers=workers, progress=progress, engine=engine)
    curves = target_curves(main + sens + renorm, home)
    outcomes = run_outcomes(curves, last=min(50, steps))
    outcomes.assign(sweep=[r.split("_", 1)[0] for r in outcomes["run"]]).to_csv(home / "outcomes.csv", index=False)
    curves.to_csv(home / "curves.csv.gz", index=False)
    written = {"outcomes": home / "outcomes.csv", "curves": home / "curves.csv.gz"}
    written.update(toy_tree_summary(out, figures if figures is not None else out))
    return written


def renormalised_table(cell_outcomes):
    """Per (model, optimiser, lr) of the figure cell: GRPO, λ-GRPO and λ-GRPO renormalised (mean target frequency
    and exact π(T) over the last steps, seeds converged), for the settings where the renormalised variant ran."""
    import pandas as pd

    rows = []
    for (model, optimizer, lr), part in cell_outcomes.groupby(["model", "optimizer", "lr"]):
        if not (part["algorithm"] == "λ-GRPO renormalised").any():
            continue
        row = {"model": model, "optimizer": optimizer, "lr": lr}
        for algo, frame in part.groupby("algorithm"):
            row[f"{algo}_freq50"] = frame["target_frequency"].mean()
            row[f"{algo}_final"] = frame["final_target_probability"].mean()
            row[f"{algo}_converged"] = int(frame["converged"].sum())
            row["seeds"] = len(frame)
        rows.append(row)
    return pd.DataFrame(rows)


RENORMALISED_COLUMNS = ["model", "optimizer", "lr", "GRPO_freq50", "λ-GRPO_freq50", "λ-GRPO renormalised_freq50",
                        "GRPO_final", "λ-GRPO_final", "λ-GRPO renormalised_final", "GRPO_converged",
                        "λ-GRPO_converged", "λ-GRPO renormalised_converged", "seeds"]


def toy_tree_summary(out: str | os.PathLike, figures: str | os.PathLike) -> dict[str, Path]:
    """Combine the toy-tree results of every model under ``out`` (folders with an ``outcomes.csv``) and write every
    table and figure with :func:`toy_tree_tables`."""
    import pandas as pd

    out = Path(out)
    homes = sorted(p.parent for p in out.glob("*/outcomes.csv"))
    if not homes:
        return {}

    def gather(name: str):
        parts = [pd.read_csv(h / name) for h in homes if (h / name).is_file()]
        return pd.concat(parts, ignore_index=True) if parts else None

    curves = []
    for h in homes:
        c = pd.read_csv(h / "curves.csv.gz")
        c = c[(c["n"] == FIGURE_CELL[0]) & (c["r_neg"] == FIGURE_CELL[1])]
        curves.append(c[c["step"] % 5 == 0] if c["run"].nunique() > 40 else c)
    return toy_tree_tables(gather("outcomes.csv"), pd.concat(curves, ignore_index=True), gather("calibration.csv"),
                           figures)


#: The committed toy-tree data (in ``figures/data``) that :func:`toy_tree_tables` rebuilds everything from.
TOY_DATA = ("toy_tree_outcomes.csv.gz", "toy_tree_curves.csv.gz", "toy_tree_calibration.csv")


def toy_tree_tables(outcomes, curves, calibration, figures: str | os.PathLike) -> dict[str, Path]:
    """Every toy-tree table and figure from per-run outcomes (:func:`~prm_probe.experiments.sweeps.run_outcomes`
    with a ``sweep`` column), the figure cell's curves and the calibration runs' outcomes.

    Writes into ``figures``: ``data/toy_tree_outcomes.csv.gz``, ``data/toy_tree_curves.csv.gz`` and
    ``data/toy_tree_calibration.csv`` (the inputs, so the tables can be rebuilt from them:
    ``prm-probe figures figures/data``), ``data/toy_tree_{table1,sensitivity,renormalised}.csv`` and their ``.md``
    tables, ``toy_tree_curves_<model>`` (per-seed curves of the figure cell) and ``toy_tree_lr_sweep``.
    """

    figs = Path(figures)
    (figs / "data").mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    outcomes.to_csv(figs / "data" / TOY_DATA[0], index=False)
    curves.to_csv(figs / "data" / TOY_DATA[1], index=False)
    if calibration is not None:
        calibration.to_csv(figs / "data" / TOY_DATA[2], index=False)
    main = outcomes[outcomes["sweep"] == "table1"]
    table = toy_tree_table(main)
    cell = outcomes[(outcomes["n"] == FIGURE_CELL[0]) & (outcomes["r_neg"] == FIGURE_CELL[1])]
    sens = toy_tree_table(cell[cell["algorithm"] != "λ-GRPO renormalised"], by=("model", "optimizer", "lr"))
    table.to_csv(figs / "data" / "toy_tree_table1.csv", index=False)
    sens.to_csv(figs / "data" / "toy_tree_sensitivity.csv", index=False)
    written["table1"] = write_text_atomic(figs / "toy_tree_table1.md",
                                          _table_markdown(table, ["optimizer", "lr", "n", "r_neg"]))
    written["sensitivity"] = write_text_atomic(figs / "toy_tree_sensitivity.md",
                                               _table_markdown(sens, ["optimizer", "lr"]))
    renorm = renormalised_table(cell)
    if len(renorm):
        renorm.to_csv(figs / "data" / "toy_tree_renormalised.csv", index=False)
        written["renormalised"] = write_text_atomic(
            figs / "toy_tree_renormalised.md",
            "\n".join(f"### {m}\n\n" + _md(part, [c for c in RENORMALISED_COLUMNS if c != "model"])
                      for m, part in renorm.groupby("model", sort=False))
            + "\nfreq50: frequency of T over the last 50 steps (window mean); final: exact π(T) at the last step; "
              "means over seeds.\n")
    for model, c in curves.groupby("model", sort=True):
        written.update(_toy_figure(c, figs, model_slug(str(model))))
    written.update(_lr_sweep_figure(outcomes, figs))
    return written


def toy_tree_from_data(folder: str | os.PathLike, figures: str | os.PathLike) -> dict[str, Path]:
    """:func:`toy_tree_tables` from the committed data files :data:`TOY_DATA` in ``folder`` (e.g.
    ``figures/data``): the tables and figures of every model, without a run."""
    import pandas as pd

    folder = Path(folder)
    calib = folder / TOY_DATA[2]
    return toy_tree_tables(pd.read_csv(folder / TOY_DATA[0]), pd.read_csv(folder / TOY_DATA[1]),
                           pd.read_csv(calib) if calib.is_file() else None, figures)


def _table_markdown(frame, keys: Sequence[str]) -> str:
    parts = []
    for model, part in frame.groupby("model", sort=False):
        parts += [f"### {model}", "", outcome_markdown(part, keys), ""]
    return "\n".join(parts)


def _toy_figure(curves, figs: Path, slug: str) -> dict[str, Path]:
    """Per-seed curves of the figure cell, one row of panels per optimiser setting (one figure per optimiser when
    a model ran more than 4 settings): the exact π(T) where the runs logged it, else the sampled frequency of T."""
    from prm_probe.views.plots import plot_target_frequency, theme

    if curves.empty:
        return {}
    y = "target_probability" if curves["target_probability"].notna().all() else "target_frequency"
    data = curves.assign(setting=[f"{o} lr {lr:g}" for o, lr in zip(curves["optimizer"], curves["lr"], strict=True)])
    split = data["setting"].nunique() > 4
    written = {}
    with theme():
        for optimizer, part in data.groupby("optimizer") if split else [(None, data)]:
            name = f"toy_tree_curves_{slug}" + (f"_{optimizer}" if split else "")
            fig = plot_target_frequency(part.sort_values(["lr", "seed", "step"]), y=y,
                                        row="setting" if part["setting"].nunique() > 1 else None)
            fig.suptitle(f"{part['model'].iloc[0]}: toy tree n = {FIGURE_CELL[0]}, r_neg = {FIGURE_CELL[1]}, one "
                         "line per seed", fontsize=10)
            written[name] = _save(fig, figs / name)[0]
    return written


def lr_sweep_frame(outcomes):
    """Per (model, optimiser, algorithm, lr): mean exact π(T) over seeds with a normal 95% interval, for the figure
    cell and for the mean over all cells run (per seed, averaged over the cells first)."""
    import pandas as pd

    value = "target_probability" if outcomes["target_probability"].notna().all() else "target_frequency"
    cell = outcomes[(outcomes["n"] == FIGURE_CELL[0]) & (outcomes["r_neg"] == FIGURE_CELL[1])]
    plain = outcomes[outcomes["algorithm"] != "λ-GRPO renormalised"]  # run on the figure cell only
    per_seed = plain.groupby(["model", "optimizer", "algorithm", "lr", "seed"], as_index=False)[value].mean()
    frames = []
    for label, frame in ((f"n = {FIGURE_CELL[0]}, r_neg = {FIGURE_CELL[1]}", cell), ("mean of the cells", per_seed)):
        g = frame.groupby(["model", "optimizer", "algorithm", "lr"], as_index=False)[value].agg(["mean", "sem"])
        g["lower"], g["upper"] = g["mean"] - 1.96 * g["sem"].fillna(0), g["mean"] + 1.96 * g["sem"].fillna(0)
        g["panel"] = [f"{m} · {o} · {label}" for m, o in zip(g["model"], g["optimizer"], strict=True)]
        frames.append(g)
    return pd.concat(frames, ignore_index=True), value


def _lr_sweep_figure(outcomes, figs: Path) -> dict[str, Path]:
    """Outcome against the learning rate, GRPO vs λ-GRPO, for each (model, optimiser) run at 3 or more rates."""
    from prm_probe.views.plots import plot_sweep, theme

    swept = outcomes.groupby(["model", "optimizer"])["lr"].transform("nunique") >= 3
    if not swept.any():
        return {}
    frame, value = lr_sweep_frame(outcomes[swept])
    with theme():
        fig = plot_sweep(frame, x="lr", y="mean", lower="lower", upper="upper",
                         ylabel="exact π(T), last 50 steps" if value == "target_probability" else "frequency of T")
        fig.suptitle("toy tree: where λ-GRPO's effect appears and where it vanishes (mean over seeds, 95% CI)",
                     fontsize=10)
        return {"toy_tree_lr_sweep": _save(fig, figs / "toy_tree_lr_sweep")[0]}


def overlap_experiment(out: str | os.PathLike, figures: str | os.PathLike | None = None, *,
                       group_sizes: Sequence[int] = (6, 36), steps: int = 200, model: str = "tiny-gpt2",
                       task: str = "toy-tree", prompts_per_step: int = 4, max_new_tokens: int = 48,
                       lr: float = TOY_LR, val_every: int = 10, workers: int | None = None,
                       task_options: dict | None = None, val_size: int = 16,
                       progress: bool = False) -> dict[str, Path]:
    """Vanilla GRPO at each group size; writes ``overlap_dynamics.csv`` and the 2 × 3 figure.

    CPU-sized default: the paper's group sizes G ∈ {6, 36} and 4 groups per step, on a *stand-in* for a
    reasoning task — a depth-12 binary tree whose reward is the share of a target path's actions matched
    from the start (``DEEP_TREE``), with the 2-layer model from scratch; 200 steps take about a minute. It
    shows the mechanism (overlap rising as the policy converges), not the paper's numbers. The paper's
    setting (docs/science.md §7.2: DeepSeek-R1-Distill-Qwen-1.5B on OpenRS, ~1,675 and ~275 steps) is, on a GPU,
    ``--model DIR --task jsonl:openrs.jsonl --steps 1675`` (and ``--set`` for its sampling settings).
    """

    import pandas as pd

    out = Path(out)
    figs = Path(figures) if figures is not None else out
    if task_options is None and task == "toy-tree":
        task_options = DEEP_TREE
    specs = overlap_specs(group_sizes=group_sizes, steps=steps, task=task, model=model,
                          prompts_per_step=prompts_per_step, max_new_tokens=max_new_tokens, lr=lr, val_every=val_every,
                          task_options=task_options, val_size=val_size)
    run_specs(specs, out, workers=workers, progress=progress)
    rows = []
    for s in specs:
        rows += [{**s.labels, **rec} for rec in read_jsonl(RunFolder(out / "runs" / s.name).metrics)]
    frame = pd.DataFrame(rows)
    keep = [c for c in ("group_size", "step", "reward_mean", "val_reward_mean", "val_accuracy", "path_depth_mean",
                        "path_depth_median", "intermediate_proportion_mean", "intermediate_proportion_median",
                        "nontrivial_fraction", "proper_branching_fraction", "gradient_mass_ratio") if c in frame]
    frame = frame[keep]
    frame.to_csv(out / "overlap_dynamics.csv", index=False)
    if figures is not None:
        (figs / "data").mkdir(parents=True, exist_ok=True)
        frame.to_csv(figs / "data" / "overlap_dynamics.csv", index=False)
    return {"data": out / "overlap_dynamics.csv", **_overlap_figure(frame, figs)}


def _overlap_figure(frame, figs: Path) -> dict[str, Path]:
    from prm_probe.views.plots import plot_overlap_dynamics, theme

    with theme():
        fig = plot_overlap_dynamics(frame)
        paths = _save(fig, figs / "overlap_dynamics")
    return {"overlap_dynamics": paths[0]}


def _busiest_group(stats) -> tuple[int, int, str]:
    """(step, group, run_id) of the group with the most trie nodes among those whose rewards differ (so its step
    rewards and advantages are not all 0), else among all groups: the most interesting to draw."""
    g = stats.groups
    varied = g[g["reward_std"] > 0] if "reward_std" in g else g.iloc[0:0]
    g = varied if len(varied) else g
    row = g.sort_values(["node_count", "step", "group"], ascending=[False, True, True]).iloc[0]
    return int(row["step"]), int(row["group"]), str(row["run_id"])


def log_figures(log: str | os.PathLike, figures: str | os.PathLike, *, tokenizer: str | None = None,
                stats=None) -> dict[str, Path]:
    """Figures of one rollout log: the |λ| histogram, the per-step non-trivial fraction, one group's trie."""
    from prm_probe.core.group_trie import GroupTrie
    from prm_probe.core.stats import overlap_stats
    from prm_probe.views.plots import draw_trie, plot_nontrivial_fraction, plot_size_histogram, theme

    figs = Path(figures)
    stats = stats if stats is not None else overlap_stats(log)
    hist = stats.histogram.groupby("process_set_size", as_index=False)["tokens"].sum()
    written: dict[str, Path] = {}
    with theme():
        ax = plot_size_histogram(hist, log=True)
        ax.set_title("process-set sizes |λ| of all completion tokens")
        written["size_histogram"] = _save(ax.figure, figs / "size_histogram")[0]
        ax = plot_nontrivial_fraction(stats.steps)
        ax.set_title("share of non-trivial groups per step")
        written["nontrivial_fraction"] = _save(ax.figure, figs / "nontrivial_fraction")[0]
        step, group, run_id = _busiest_group(stats)
        trie = GroupTrie.from_log(log, step, group, run_id)
        from prm_probe.training.models import log_decoder

        decode, why = log_decoder(log, tokenizer)
        ax = draw_trie(trie, decode=decode)
        ax.set_title(f"trie of step {step}, group {group} ({len(trie)} completions)"
                     + (f"; spans as token ids ({why})" if decode is None else ""))
        written["trie"] = _save(ax.figure, figs / "group_trie")[0]
    return written


def make_figures(inputs: Sequence[str | os.PathLike], figures: str | os.PathLike, *,
                 tokenizer: str | None = None) -> dict[str, Path]:
    """Redraw every figure from data on disk. Each input is a rollout log, a toy-tree experiment folder (one
    subfolder per model holding ``outcomes.csv``), a folder of committed toy-tree data (``figures/data``:
    :data:`TOY_DATA`), an overlap-dynamics folder (``overlap_dynamics.csv``) or a set of run folders to compare
    (any folder with ``config.json``)."""
    import pandas as pd

    figs = Path(figures)
    written: dict[str, Path] = {}
    runs: list[str] = []
    for item in inputs:
        p = Path(item)
        experiment = False  # a data folder (figures/data) can hold both experiments' files
        if any(p.glob("*/outcomes.csv")):
            written.update(toy_tree_summary(p, figs))
            experiment = True
        elif (p / TOY_DATA[0]).is_file():
            written.update(toy_tree_from_data(p, figs))
            experiment = True
        if (p / "overlap_dynamics.csv").is_file():
            written.update(_overlap_figure(pd.read_csv(p / "overlap_dynamics.csv"), figs))
            experiment = True
        if experiment:
            continue
        if is_run_dir(p):
            runs.append(str(p))
        else:
            written.update(log_figures(p, figs, tokenizer=tokenizer))
    if len(runs) >= 2:
        from prm_probe.views.compare import compare_runs

        comparison = compare_runs(runs, metric="reward_mean")
        for path in comparison.write(figs / "comparison", "reward_mean"):
            if path.suffix == ".png":
                written[path.stem] = path
    return written


#: The demo's toy-tree setting: the tabular policy (no function approximation, ~1 s a run) with plain SGD at a
#: learning rate where the full sweep (figures/README.md) shows GRPO and λ-GRPO apart within 250 steps.
DEMO_SETTING: Setting = ("sgd", 1.0)
DEMO_WHY = ("the tabular policy isolates the algorithm from function approximation; at 250 steps (the default) "
            "λ-GRPO ends with π(T) >= 0.5 in all 60 seeds of the full sweep; under plain SGD the 1/|λ| weights slow "
            "the trap's shared first action relative to the rows below it "
            "(Adam normalises each parameter's step and so equalises those speeds), and at this learning rate the "
            "full 60-seed sweep separates the two algorithms")


def demo(out: str | os.PathLike, *, log: str | os.PathLike | None = None, seeds: int = 10, steps: int = 250,
         workers: int | None = None, progress: bool = False) -> Path:
    """The README's main job: GRPO vs λ-GRPO on the paper's toy tree (n = 1, r_neg = −1.0) with the tabular policy
    at :data:`DEMO_SETTING`, the overlap statistics and implied PRM of the bundled real log, figures, and
    ``report.md``; returns the report's path."""
    from prm_probe.core.stats import overlap_stats
    from prm_probe.errors import ConfigError
    from prm_probe.views.compare import compare_runs

    for name, value in (("seeds", seeds), ("steps", steps), ("workers", 1 if workers is None else workers)):
        if int(value) < 1:  # refused before any folder is made
            raise ConfigError(f"--{name} {value}; expected at least 1; raise it")
    source = Path(log) if log is not None else BUNDLED_LOG
    if log is not None and not source.exists():
        raise ConfigError(f"--log {log} does not exist; expected a rollout log; check the path (or leave --log out "
                          "for the bundled one)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    optimizer, lr = DEMO_SETTING
    phase = _phases(progress)
    phase(f"training GRPO and λ-GRPO on the toy tree ({seeds} seeds each, {steps} steps)")
    specs = toy_tree_specs(model="tabular", settings=(DEMO_SETTING,), cells=(FIGURE_CELL,), seeds=range(seeds),
                           steps=steps, prefix="demo", rollouts_every=0)
    runs = run_specs(specs, out, workers=workers, progress=progress)
    phase("tables and figures of the runs")
    curves = target_curves(specs, out)
    outcomes = run_outcomes(curves, last=min(50, steps))
    table = toy_tree_table(outcomes)
    table.to_csv(out / "toy_tree.csv", index=False)
    figures = _toy_figure(curves, out, "tabular")
    comparison = compare_runs([str(r) for r in runs], metric="target_probability")
    comparison.write(out / "comparison", "target_probability")
    per_seed = outcomes.pivot_table(index="seed", columns="algorithm", values="final_target_probability")
    lines = ["# prm_probe demo", "",
             f"## GRPO vs λ-GRPO on the paper's toy tree (n = 1, r_neg = −1.0; {seeds} seeds, {steps} steps)", "",
             f"Setting: the **tabular policy** (one zero-initialised logit vector over L/R per prefix) trained with "
             f"plain {optimizer.upper()} at learning rate {lr:g}, G = 16, token-mean, μ = 1, β = 0. Why this "
             f"setting: {DEMO_WHY}.", "",
             f"Two outcomes per run: the frequency of the target path T among the samples of the last "
             f"{min(50, steps)} steps (freq50, the paper's metric; the paper reports 0.0000 for GRPO and 0.7535 for "
             "λ-GRPO with GPT-2-small), and the exact probability π(T) of the policy at the last step (final); "
             "converged: seeds ending with π(T) >= 0.5:", "",
             outcome_markdown(table, []),
             *([f"**{steps} steps is a smoke test**: the full demo trains 250 steps, where λ-GRPO has learned "
                "the target; these numbers have not converged.", ""] if steps < 250 else []),
             "Per seed, exact π(T) at the last step:", "",
             _md(per_seed.reset_index(), ["seed", *per_seed.columns]),
             "![exact π(T) per seed](toy_tree_curves_tabular.png)", "",
             "The mean exact π(T) per algorithm over the seeds, with a bootstrap 95 % band:", "",
             "![mean π(T) per algorithm](comparison/curves_target_probability.png)", "",
             "Per-run peaks and tests: [comparison/summary.md](comparison/summary.md). The full sweep over models, "
             "optimisers and learning rates: `prm-probe experiment toy-tree --model tabular` (and `--model "
             "tiny-gpt2`, `--model smollm2-135m`).", ""]
    if source.exists():
        phase(f"overlap statistics and implied PRM of {source.name}")
        stats = overlap_stats(source)
        s = stats.summary()
        figures.update(log_figures(source, out, stats=stats))
        lines += [f"## Overlap statistics of `{source.name}`", "",
                  f"{s['groups']} groups, {s['completions']} completions, {s['tokens']} tokens.", "",
                  "| statistic | value |", "|---|---|",
                  f"| non-trivial groups (F1: some token shared) | {s['nontrivial_fraction']:.1%} |",
                  f"| proper branching (F2: a node with 1 < \\|λ\\| < G) | {s['proper_branching_fraction']:.1%} |",
                  f"| path depth, mean / median | {s['path_depth_mean']:.2f} / {s['path_depth_median']:.1f} |",
                  f"| intermediate proportion, mean / median | {s['intermediate_proportion_mean']:.3f} / "
                  f"{s['intermediate_proportion_median']:.3f} |",
                  f"| gradient-mass ratio Σ 1/\\|λ\\| / Σ 1 | {s['gradient_mass_ratio']:.3f} |", "",
                  "The paper reports 99.8% non-trivial groups (G = 6, DeepSeek-R1-Distill-Qwen-1.5B on OpenRS).", "",
                  "![|λ| histogram](size_histogram.png)", "",
                  "The share of non-trivial groups per step:", "", "![non-trivial groups](nontrivial_fraction.png)",
                  "",
                  "The implied PRM of the busiest group whose rewards differ (boxes coloured by the PRM-aware "
                  "advantage A):", "", "![trie](group_trie.png)", ""]
    else:
        lines += [f"(No bundled log at {source}: pass --log to add the overlap statistics of a log.)", ""]
    phase(None)
    return write_text_atomic(out / "report.md", "\n".join(lines))


def _phases(progress: bool):
    """``phase(text)`` announces a stage of the demo on stderr (through tqdm, so it does not break its bars);
    ``phase(None)`` ends; a no-op without ``progress``."""
    if not progress:
        return lambda text: None
    from tqdm.auto import tqdm

    def phase(text: str | None) -> None:
        if text is not None:
            tqdm.write(f"prm-probe demo: {text} ...", file=sys.stderr)

    return phase
