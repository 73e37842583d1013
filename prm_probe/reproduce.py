"""Regenerating the paper's evidence: the toy-tree and overlap-dynamics experiments, every figure, the demo.

Each driver runs its sweep (``experiments``), writes its tables (CSV and Markdown) and raw data next to the
runs, and draws its figures (``plots``) into a figures folder. :func:`make_figures` redraws every figure
from data already on disk without training. :func:`demo` is the README's main command: a reduced toy-tree
comparison plus the overlap statistics and implied PRM of the bundled real log, with a short report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prm_probe.experiments import (
    overlap_specs,
    run_specs,
    sensitivity_specs,
    target_curves,
    toy_tree_specs,
    toy_tree_table,
)
from prm_probe.files import write_text_atomic

__all__ = ["BUNDLED_LOG", "demo", "log_figures", "make_figures", "overlap_experiment", "toy_tree_experiment"]

logger = logging.getLogger(__name__)

#: The real SmolLM2 log shipped in the repository (present in a clone or an editable install).
BUNDLED_LOG = Path(__file__).resolve().parents[1] / "data" / "sample_rollouts.parquet"

#: The toy tree's learning rate, calibrated once (figures/README.md): GRPO with Adam at 3e-4 converges on T
#: within 250 steps on the no-trap control (every non-target path 0.7) for both calibration seeds.
TOY_LR = 3e-4

#: The overlap-dynamics default task: a deep toy tree with a dense reward (share of T matched from the start).
DEEP_TREE = {"depth": 12, "reward": "prefix"}


def _fmt(column: str, x: object) -> str:
    if not isinstance(x, float | np.floating | int | np.integer):
        return str(x)
    if x != x:
        return "nan"
    if column in ("n", "seeds"):
        return str(int(x))
    if column in ("r_neg", "lr"):
        return f"{float(x):g}"
    return f"{float(x):+.4f}" if "delta" in column else f"{float(x):.4f}"


def _md(frame, columns: Sequence[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = ["| " + " | ".join(_fmt(c, r[c]) for c in columns) + " |" for _, r in frame.iterrows()]
    return head + "\n".join(rows) + "\n"


def _save(fig, path: Path) -> list[Path]:
    from prm_probe.plots import save_figure

    return save_figure(fig, path)


def toy_tree_experiment(out: str | os.PathLike, figures: str | os.PathLike | None = None, *, seeds: int = 5,
                        steps: int = 250, workers: int | None = None, model: str = "tiny-gpt2", lr: float = TOY_LR,
                        optimizer: str = "adam", sensitivity: bool = True, ns: Sequence[int] = (1, 2),
                        r_negs: Sequence[float] = (-0.5, -1.0, -1.5), progress: bool = False) -> dict[str, Path]:
    """Run the Table 1 sweep (and the optimiser/learning-rate sensitivity sweep) and write its results.

    Writes into ``out``: ``runs/`` (one run folder per run; finished runs are skipped on a rerun),
    ``table1.csv`` / ``table1.md`` (ours beside the paper's, with Δ), ``sensitivity.csv`` / ``.md``,
    ``curves.csv.gz`` (target frequency per run and step: the raw data); into ``figures``:
    ``toy_tree_curves.png/.pdf`` (per-seed curves for n = 1, r_neg = −1.0).
    """
    import pandas as pd

    out = Path(out)
    figs = Path(figures) if figures is not None else out
    seed_list = range(seeds)
    main_specs = toy_tree_specs(ns=ns, r_negs=r_negs, seeds=seed_list, steps=steps, lr=lr, optimizer=optimizer,
                                model=model)
    sens_specs = sensitivity_specs(seeds=seed_list, steps=steps, model=model) if sensitivity else []
    run_specs(main_specs + sens_specs, out, workers=workers, progress=progress)
    written: dict[str, Path] = {}
    curves = target_curves(main_specs, out)
    table = toy_tree_table(curves)
    table.to_csv(out / "table1.csv", index=False)
    written["table1"] = write_text_atomic(out / "table1.md", _md(table, [
        "n", "r_neg", "paper_GRPO", "paper_λ-GRPO", "paper_delta", "GRPO", "λ-GRPO", "delta", "GRPO_sd", "λ-GRPO_sd",
        "seeds"]))
    all_curves = curves
    if sens_specs:
        sc = target_curves(sens_specs, out)
        base = curves[(curves["n"] == 1) & (curves["r_neg"] == -1.0)]  # Adam at the calibrated rate
        sens = toy_tree_table(pd.concat([sc, base], ignore_index=True), by=("optimizer", "lr"))
        sens.to_csv(out / "sensitivity.csv", index=False)
        written["sensitivity"] = write_text_atomic(out / "sensitivity.md", _md(sens, [
            "optimizer", "lr", "GRPO", "λ-GRPO", "delta", "GRPO_sd", "λ-GRPO_sd", "seeds"]))
        all_curves = pd.concat([curves.assign(sweep="table1"), sc.assign(sweep="sensitivity")], ignore_index=True)
    all_curves.to_csv(out / "curves.csv.gz", index=False)
    written["curves"] = out / "curves.csv.gz"
    written.update(_toy_figure(curves, figs))
    return written


def _toy_figure(curves, figs: Path) -> dict[str, Path]:
    from prm_probe.plots import plot_target_frequency, theme

    pick = curves[(curves["n"] == 1) & (curves["r_neg"] == -1.0)]
    if pick.empty:
        return {}
    with theme():
        fig = plot_target_frequency(pick)
        fig.suptitle("toy tree, n = 1, r_neg = −1.0: frequency of the target path per seed")
        paths = _save(fig, figs / "toy_tree_curves")
    return {"toy_tree_curves": paths[0]}


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
    setting (SCIENCE.md §7.2: DeepSeek-R1-Distill-Qwen-1.5B on OpenRS, ~1,675 and ~275 steps) is, on a GPU,
    ``--model DIR --task jsonl:openrs.jsonl --steps 1675`` (and ``--set`` for its sampling settings).
    """
    import json

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
        for line in (out / "runs" / s.name / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                rows.append({**s.labels, **json.loads(line)})
    frame = pd.DataFrame(rows)
    keep = [c for c in ("group_size", "step", "reward_mean", "val_reward_mean", "val_accuracy", "path_depth_mean",
                        "path_depth_median", "intermediate_proportion_mean", "intermediate_proportion_median",
                        "nontrivial_fraction", "proper_branching_fraction", "gradient_mass_ratio") if c in frame]
    frame = frame[keep]
    frame.to_csv(out / "overlap_dynamics.csv", index=False)
    return {"data": out / "overlap_dynamics.csv", **_overlap_figure(frame, figs)}


def _overlap_figure(frame, figs: Path) -> dict[str, Path]:
    from prm_probe.plots import plot_overlap_dynamics, theme

    with theme():
        fig = plot_overlap_dynamics(frame)
        paths = _save(fig, figs / "overlap_dynamics")
    return {"overlap_dynamics": paths[0]}


def _busiest_group(stats) -> tuple[int, int, str]:
    """(step, group, run_id) of the group with the most trie nodes (the most interesting to draw)."""
    g = stats.groups
    row = g.sort_values(["node_count", "step", "group"], ascending=[False, True, True]).iloc[0]
    return int(row["step"]), int(row["group"]), str(row["run_id"])


def log_figures(log: str | os.PathLike, figures: str | os.PathLike, *, tokenizer: str | None = None,
                stats=None) -> dict[str, Path]:
    """Figures of one rollout log: the |λ| histogram, the per-step non-trivial fraction, one group's trie."""
    from prm_probe.group_trie import GroupTrie
    from prm_probe.plots import draw_trie, plot_nontrivial_fraction, plot_size_histogram, theme
    from prm_probe.stats import overlap_stats

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
        decode = None
        if tokenizer:
            from prm_probe.cli import _load_decoder

            decode = _load_decoder(tokenizer)
        ax = draw_trie(trie, decode=decode)
        ax.set_title(f"trie of step {step}, group {group} ({len(trie)} completions)")
        written["trie"] = _save(ax.figure, figs / "group_trie")[0]
    return written


def make_figures(inputs: Sequence[str | os.PathLike], figures: str | os.PathLike, *,
                 tokenizer: str | None = None) -> dict[str, Path]:
    """Redraw every figure from data on disk. Each input is a rollout log, a toy-tree experiment folder
    (holding ``curves.csv.gz``), an overlap-dynamics folder (``overlap_dynamics.csv``) or a set of run
    folders to compare (any folder with ``config.json``)."""
    import pandas as pd

    figs = Path(figures)
    written: dict[str, Path] = {}
    runs: list[str] = []
    for item in inputs:
        p = Path(item)
        if (p / "curves.csv.gz").is_file():
            curves = pd.read_csv(p / "curves.csv.gz")
            if "sweep" in curves:
                curves = curves[curves["sweep"] == "table1"]
            written.update(_toy_figure(curves, figs))
        elif (p / "overlap_dynamics.csv").is_file():
            written.update(_overlap_figure(pd.read_csv(p / "overlap_dynamics.csv"), figs))
        elif (p / "config.json").is_file():
            runs.append(str(p))
        else:
            written.update(log_figures(p, figs, tokenizer=tokenizer))
    if len(runs) >= 2:
        from prm_probe.compare import compare_runs

        comparison = compare_runs(runs, metric="reward_mean")
        for path in comparison.write(figs / "comparison", "reward_mean"):
            if path.suffix == ".png":
                written[path.stem] = path
    return written


def demo(out: str | os.PathLike, *, log: str | os.PathLike | None = None, seeds: int = 3, steps: int = 250,
         workers: int | None = None, progress: bool = False) -> Path:
    """The README's main job: a reduced toy-tree comparison of GRPO and λ-GRPO (n = 1, r_neg = −1.0), the
    overlap statistics and implied PRM of the bundled real log, figures, and ``report.md``; returns it."""
    from prm_probe.compare import compare_runs
    from prm_probe.stats import overlap_stats

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    specs = toy_tree_specs(ns=(1,), r_negs=(-1.0,), seeds=range(seeds), steps=steps, lr=TOY_LR, prefix="demo")
    runs = run_specs(specs, out, workers=workers, progress=progress)
    curves = target_curves(specs, out)
    table = toy_tree_table(curves, last=min(50, steps))
    table.to_csv(out / "toy_tree.csv", index=False)
    figures = _toy_figure(curves, out)
    comparison = compare_runs([str(r) for r in runs], metric="reward_target_mean")
    comparison.write(out / "comparison", "reward_target_mean")
    lines = ["# prm_probe demo", "",
             f"## GRPO vs λ-GRPO on the paper's toy tree (n = 1, r_neg = −1.0; {seeds} seeds, {steps} steps)", "",
             "Frequency of the target path over the last 50 steps (SCIENCE.md §7.1; the paper's 250-step numbers "
             "are 0.0000 for GRPO and 0.7535 for λ-GRPO):", "",
             _md(table, ["GRPO", "λ-GRPO", "delta", "GRPO_sd", "λ-GRPO_sd", "seeds"]),
             "![target frequency per seed](toy_tree_curves.png)", "",
             "Per-run peaks and tests: [comparison/summary.md](comparison/summary.md).", ""]
    source = Path(log) if log is not None else BUNDLED_LOG
    if source.exists():
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
                  "![|λ| histogram](size_histogram.png)", "", "The implied PRM of the group with the most nodes:", "",
                  "![trie](group_trie.png)", ""]
    else:
        lines += [f"(No bundled log at {source}: pass --log to add the overlap statistics of a log.)", ""]
    return write_text_atomic(out / "report.md", "\n".join(lines))
