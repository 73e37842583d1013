"""The tables of a prm-quality measurement and the numbers computed from them (docs/science.md §3.1).

A measurement (:func:`prm_probe.training.prm_quality.measure_prm_quality`) gives one row per shared node
(:data:`NODE_COLUMNS`): the node's implied step reward R̂(λ) beside a Monte-Carlo (or exact) estimate of the true
value V(prefix) of its prefix. This module owns that table and what is computed from it without a model:
:func:`prm_quality_summary` (bias and RMSE of R̂ against V by |λ| and depth, correlations, the share of nodes GRPO
pushes the wrong way), the per-token view :func:`prm_quality_tokens` (:data:`TOKEN_COLUMNS`) and its summary.
numpy and pandas only; the result object with figures is :class:`prm_probe.views.prm_quality.PrmQuality`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from prm_probe.errors import ConfigError

__all__ = ["NODE_COLUMNS", "TOKEN_COLUMNS", "prm_quality_summary", "prm_quality_token_summary", "prm_quality_tokens",
           "shared_nodes", "step_groups"]

#: One row per node.
NODE_COLUMNS = ("run_id", "step", "group", "node", "size", "depth", "start", "end", "step_reward", "group_mean",
                "group_std", "mc_value", "mc_stderr", "K", "exact_value", "exact_std")

#: One row per completion token that lies in a node with a value (see :func:`prm_quality_tokens`).
TOKEN_COLUMNS = ("run_id", "step", "group", "sample", "t", "node", "size", "reward", "step_reward", "value",
                 "outcome_advantage", "prm_advantage", "value_advantage", "value_advantage_stderr")


def step_groups(table, step: int | None):
    """The packed groups of one step of a log (default: its first step), their process sets and moments."""
    from types import SimpleNamespace

    from prm_probe.core.prm import group_moments
    from prm_probe.core.rollouts import pack_groups
    from prm_probe.core.trie import process_sets

    steps = np.asarray(table.column("step").to_numpy(zero_copy_only=False))
    if len(steps) == 0:
        raise ConfigError("the log has no rows; expected sampled groups; check the log")
    chosen = int(steps.min()) if step is None else int(step)
    if not (steps == chosen).any():
        raise ConfigError(f"the log has no step {chosen}; expected one of {sorted(set(steps.tolist()))[:10]}; "
                          "fix --step")
    grouped = pack_groups(table.filter(steps == chosen))
    ps = process_sets(grouped.packed)
    mean, std, _ = group_moments(grouped.reward, grouped.packed.group_offsets)
    return SimpleNamespace(grouped=grouped, ps=ps, mean=mean, std=std)


def shared_nodes(table, step: int | None) -> list[dict[str, Any]]:
    """The nodes with |λ| > 1 of one step's groups (default: the log's first step), with their prefixes."""
    sg = step_groups(table, step)
    grouped, ps = sg.grouped, sg.ps
    packed = grouped.packed
    keys = grouped.group_keys
    members = ps.node_members()
    prompts = grouped.table.column("prompt_ids").to_pylist()  # rows in packing order
    nodes = []
    for node in range(ps.n_nodes):
        size = int(ps.node_size[node])
        if size < 2 or ps.node_end[node] <= ps.node_start[node]:
            continue
        g = int(ps.node_group[node])
        c0 = int(packed.group_offsets[g])
        first = c0 + int(members[node][0])  # a member completion (samples are 0..G-1 in packing order)
        t0 = int(packed.offsets[first])
        end = int(ps.node_end[node])
        reward = grouped.reward[c0 + members[node]]
        nodes.append({"run_id": str(keys["run_id"][g]), "step": int(keys["step"][g]), "group": int(keys["group"][g]),
                      "node": node - int(ps.group_node_offsets[g]), "size": size, "depth": int(ps.node_depth[node]),
                      "start": int(ps.node_start[node]), "end": end, "step_reward": float(np.mean(reward)),
                      "group_mean": float(sg.mean[g]), "group_std": float(sg.std[g]),
                      "prompt_id": str(keys["prompt_id"][g]), "prompt_ids": list(prompts[first]),
                      "prefix": packed.tokens[t0:t0 + end].astype(int).tolist()})
    return nodes


def _pearson(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


def _spearman(a, b) -> float:
    """Pearson's correlation of the ranks (ties get their mean rank), as scipy's spearmanr."""
    return _pearson(pd.Series(np.asarray(a, dtype=float)).rank(), pd.Series(np.asarray(b, dtype=float)).rank())


def prm_quality_summary(nodes: pd.DataFrame, value: str = "mc_value") -> dict[str, pd.DataFrame | float]:
    """How well R̂ tracks V: overall and by |λ| and depth.

    Args:
        nodes: rows of a measurement (:data:`NODE_COLUMNS`).
        value: the column taken as the truth (``mc_value``, or ``exact_value`` where known).

    Returns:
        ``overall`` (one-row frame: nodes, bias = mean(R̂ − V), RMSE, ``rmse_corrected`` (the RMSE with the
        Monte-Carlo estimate's own variance, the mean of ``mc_stderr²``, taken out of the mean squared error: the
        RMSE against the true V, estimated; equal to RMSE for an exact value), Pearson and Spearman correlation,
        ``wrong_sign_share``: nodes where R̂ − r̄ and V − r̄ have opposite signs, i.e. GRPO pushes the prefix the
        wrong way, ``grpo_weight_corr`` and ``lambda_weight_corr``: correlation of GRPO's per-node push
        |λ|·(R̂ − r̄) and λ-GRPO's (R̂ − r̄) with the true-value push |λ|·(V − r̄) and (V − r̄)), ``by_size``
        and ``by_depth`` (bias, RMSE, corrected RMSE, wrong-sign share, nodes per group of rows).
    """
    d = nodes.dropna(subset=[value]).copy()
    d["error"] = d["step_reward"] - d[value]
    # an MC value's own noise adds its variance to the mean squared error (R̂ and V̂ use independent samples)
    d["noise_var"] = d["mc_stderr"] ** 2 if value == "mc_value" and "mc_stderr" in d.columns else 0.0

    def corrected(rows: pd.DataFrame) -> float:
        return float(np.sqrt(max((rows["error"] ** 2).mean() - rows["noise_var"].mean(), 0.0)))
    dr, dv = d["step_reward"] - d["group_mean"], d[value] - d["group_mean"]
    wrong = (np.sign(dr) * np.sign(dv) < 0)

    def corr(a, b, f) -> float:
        return f(a, b) if len(a) > 2 and np.std(a) > 0 and np.std(b) > 0 else float("nan")

    overall = pd.DataFrame([{
        "nodes": len(d), "bias": float(d["error"].mean()), "rmse": float(np.sqrt((d["error"] ** 2).mean())),
        "rmse_corrected": corrected(d) if len(d) else float("nan"),
        "pearson": corr(d["step_reward"], d[value], _pearson),
        "spearman": corr(d["step_reward"], d[value], _spearman),
        "wrong_sign_share": float(wrong.mean()) if len(d) else float("nan"),
        "grpo_weight_corr": corr(d["size"] * dr, d["size"] * dv, _pearson),
        "lambda_weight_corr": corr(dr, dv, _pearson)}])

    def by(col: str) -> pd.DataFrame:
        g = d.groupby(col)["error"]
        return pd.DataFrame({"nodes": g.size(), "bias": g.mean(), "rmse": g.apply(lambda e: np.sqrt((e ** 2).mean())),
                             "rmse_corrected": d.groupby(col)[["error", "noise_var"]].apply(corrected),
                             "wrong_sign_share": wrong.groupby(d[col]).mean()}).reset_index()

    return {"overall": overall, "by_size": by("size"), "by_depth": by("depth")}


def prm_quality_tokens(nodes: pd.DataFrame, log: str | os.PathLike, value: str = "mc_value") -> pd.DataFrame:
    """The per-token view of :func:`prm_quality`'s nodes: for every completion token of the log that lies in
    a node with a value, GRPO's PRM-aware advantage A(i, t) = (R̂(λ) − r̄)/(σ + eps) beside the advantage an
    explicit PRM with the true value would give, (V(λ) − r̄)/(σ + eps), with the same group baseline r̄ and
    scale σ (and eps, :data:`prm_probe.core.prm.ADVANTAGE_EPS`), and the outcome advantage a_i GRPO applies
    to the token.

    Args:
        nodes: rows of a measurement (:data:`NODE_COLUMNS`) (one or more steps of ``log``).
        log: the rollout log those nodes came from.
        value: the column taken as V (``mc_value``, or ``exact_value`` where known).

    Returns:
        One row per such token with the columns of :data:`TOKEN_COLUMNS` (``t`` is the token's position in
        its completion, ``node`` the within-group node id of :func:`prm_quality`, ``value_advantage_stderr``
        the MC standard error carried through the scale; NaN for exact values; both NaN in groups whose rewards
        are all equal, where σ = 0 and GRPO's advantages are 0). Tokens of nodes that were not
        measured (``--max-nodes``) and of unshared nodes (|λ| = 1, whose value is the completion's reward) are
        left out, so every row compares two estimates.

    Raises:
        ConfigError: ``value`` is not a column of ``nodes``, or the nodes do not belong to ``log``.
    """
    from prm_probe.core.prm import ADVANTAGE_EPS, implied_prm_frame
    from prm_probe.core.rollouts import read_rollouts

    if value not in nodes.columns:
        raise ConfigError(f"the node table has no column {value!r}; expected 'mc_value' or 'exact_value'; "
                          "pass the rows prm_quality returned")
    table = read_rollouts(log)
    frames = []
    for step in sorted(set(nodes["step"].astype(int))):
        sg = step_groups(table, step)
        ps, grouped = sg.ps, sg.grouped
        tok = implied_prm_frame(ps, grouped.reward)
        g = tok["group"].to_numpy()
        keys = grouped.group_keys
        tok["run_id"] = np.asarray(keys["run_id"], dtype=object)[g].astype(str)
        tok["step"] = step
        tok["node"] = tok["node"].to_numpy() - ps.group_node_offsets[g]
        completion = grouped.packed.group_offsets[g] + tok["sample"].to_numpy()  # packing order
        tok["sample"] = grouped.sample[completion]
        tok["group"] = np.asarray(keys["group"])[g]
        mine = nodes[nodes["step"].astype(int) == step]
        cols = ["run_id", "step", "group", "node", value, "mc_stderr", "group_mean", "group_std"]
        merged = tok.merge(mine[cols].assign(run_id=mine["run_id"].astype(str),
                                             group=mine["group"].astype(int), node=mine["node"].astype(int)),
                           on=["run_id", "step", "group", "node"], how="inner", validate="many_to_one")
        if len(merged.drop_duplicates(["run_id", "group", "node"])) < len(mine):  # a node without tokens
            raise ConfigError("the node table has nodes the log does not have; expected the rows prm_quality "
                              f"returned for '{log}'; pass the log they came from")
        # a group whose rewards are all equal has σ = 0: GRPO's advantages are exactly 0 there, and a value
        # advantage divided by eps alone would be meaningless; it is left NaN
        scale = (merged["group_std"] + ADVANTAGE_EPS).where(merged["group_std"] > 0)
        merged["value"] = merged[value]
        merged["value_advantage"] = (merged[value] - merged["group_mean"]) / scale
        merged["value_advantage_stderr"] = (merged["mc_stderr"] / scale if value == "mc_value"
                                            else np.full(len(merged), np.nan))
        merged["size"] = merged["process_set_size"]
        frames.append(merged[list(TOKEN_COLUMNS)])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(TOKEN_COLUMNS))
    return out.sort_values(["run_id", "step", "group", "sample", "t"]).reset_index(drop=True)


def prm_quality_token_summary(tokens: pd.DataFrame) -> pd.DataFrame:
    """How close each per-token advantage comes to the true-value advantage, over the rows of
    :func:`prm_quality_tokens` (every token counts once).

    Returns:
        Two rows, ``prm_advantage`` (GRPO's implied A(i, t)) and ``outcome_advantage`` (a_i), with ``tokens``,
        ``rmse`` and ``bias`` against ``value_advantage``, ``pearson`` and ``wrong_sign_share`` (tokens whose
        advantage and true-value advantage have opposite signs), over the tokens with a finite value advantage;
        ``no_signal_tokens`` counts the others (groups with equal rewards: GRPO gives them advantage 0, while an
        explicit PRM's V − r̄ need not be 0).
    """
    rows = []
    truth = tokens["value_advantage"].to_numpy(dtype=float)
    for col in ("prm_advantage", "outcome_advantage"):
        x = tokens[col].to_numpy(dtype=float)
        ok = np.isfinite(x) & np.isfinite(truth)
        e = x[ok] - truth[ok]
        pearson = (float(np.corrcoef(x[ok], truth[ok])[0, 1])
                   if ok.sum() > 2 and x[ok].std() > 0 and truth[ok].std() > 0 else float("nan"))
        rows.append({"advantage": col, "tokens": int(ok.sum()), "no_signal_tokens": int((~ok).sum()),
                     "rmse": float(np.sqrt(np.mean(e ** 2))) if ok.any() else float("nan"),
                     "bias": float(e.mean()) if ok.any() else float("nan"), "pearson": pearson,
                     "wrong_sign_share": float((np.sign(x[ok]) * np.sign(truth[ok]) < 0).mean())
                     if ok.any() else float("nan")})
    return pd.DataFrame(rows)
