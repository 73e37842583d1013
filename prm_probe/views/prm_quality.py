"""The result of a prm-quality measurement as an object: the node table, its summary, the per-token view, the
files and the figure, with the same method names as :class:`~prm_probe.core.stats.OverlapStats`
(``summary()`` a dict of headline numbers, ``frame(by)`` a pandas frame, ``write(path, by)`` one table file)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from prm_probe.core.prm_quality import (
    NODE_COLUMNS,
    prm_quality_summary,
    prm_quality_token_summary,
    prm_quality_tokens,
)
from prm_probe.errors import ConfigError

__all__ = ["PrmQuality"]

By = Literal["node", "size", "depth", "token", "token_summary"]


class PrmQuality:
    """How good GRPO's implied PRM is on one log: R̂(λ) of its shared nodes against V(prefix).

    Args:
        nodes: one row per node (:data:`~prm_probe.core.prm_quality.NODE_COLUMNS`), as measured by
            :func:`prm_probe.training.prm_quality.measure_prm_quality` (or read back from its output file).
        log: the rollout log the nodes came from (needed for the per-token view).

    Attributes:
        nodes: the node table.
        value: the column taken as the truth: ``exact_value`` where every node has one (the toy tree), else
            ``mc_value``.
    """

    def __init__(self, nodes: pd.DataFrame, log: str | os.PathLike | None = None) -> None:
        missing = [c for c in NODE_COLUMNS if c not in nodes.columns]
        if missing:
            raise ConfigError(f"the node table lacks column(s) {', '.join(missing)}; expected the columns a "
                              "prm-quality measurement writes; pass its output")
        self.nodes = nodes
        self.log = log
        self.value = "exact_value" if len(nodes) and nodes["exact_value"].notna().all() else "mc_value"
        self._tokens: pd.DataFrame | None = None

    @classmethod
    def read(cls, path: str | os.PathLike, log: str | os.PathLike | None = None) -> PrmQuality:
        """The result written by :meth:`write` (or by ``prm-probe prm-quality -o``): a .csv or .parquet node table."""
        path = Path(path)
        nodes = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
        return cls(nodes, log)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"PrmQuality(nodes={len(self.nodes)}, value={self.value!r}, log={str(self.log)!r})"

    def summary(self) -> dict[str, float]:
        """Headline numbers over every node: nodes, bias, RMSE (raw and corrected for the MC noise), correlations,
        the wrong-sign share and the push correlations (see :func:`~prm_probe.core.prm_quality.prm_quality_summary`)."""
        row = prm_quality_summary(self.nodes, value=self.value)["overall"].iloc[0]
        return {k: (int(v) if k == "nodes" else float(v)) for k, v in row.items()}

    def tokens(self) -> pd.DataFrame:
        """The per-token view (:func:`~prm_probe.core.prm_quality.prm_quality_tokens`); needs ``log``."""
        if self.log is None:
            raise ConfigError("the per-token view needs the rollout log the nodes came from; expected "
                              "PrmQuality(nodes, log); pass the log")
        if self._tokens is None:
            self._tokens = prm_quality_tokens(self.nodes, self.log, value=self.value)
        return self._tokens

    def frame(self, by: By = "node") -> pd.DataFrame:
        """``node`` (the node table), ``size`` or ``depth`` (the summary by |λ| or depth), ``token`` (the per-token
        view) or ``token_summary`` (how close each per-token advantage comes to the true-value one)."""
        if by == "node":
            return self.nodes
        if by in ("size", "depth"):
            return prm_quality_summary(self.nodes, value=self.value)[f"by_{by}"]
        if by == "token":
            return self.tokens()
        if by == "token_summary":
            return prm_quality_token_summary(self.tokens())
        raise ConfigError(f"by={by!r}; expected one of node, size, depth, token, token_summary; fix it")

    def write(self, path: str | os.PathLike, by: By = "node") -> Path:
        """Write :meth:`frame` ``(by)`` to a .csv or .parquet file, atomically; return the path."""
        from prm_probe.core.files import check_table_path, write_table

        check_table_path(path)  # before the frame is computed (the per-token view reads the log)
        return write_table(self.frame(by), path)

    def plot(self, path: str | os.PathLike | None = None, *, label: str | None = None) -> Any:
        """R̂ against V and the error by |λ| (:func:`~prm_probe.views.plots.plot_prm_quality`); with ``path``, also
        saved as PNG and PDF. Returns the matplotlib Figure."""
        from prm_probe.views.plots import plot_prm_quality, save_figure, theme

        with theme():
            fig = plot_prm_quality(self.nodes, self.frame("size"), value=self.value, label=label)
            if path is not None:
                save_figure(fig, path)
        return fig
