"""Write the TRL completions fixture (``trl/completions_*.parquet``) from hand-written rows.

TRL (>= 0.28) writes ``{output_dir}/completions/completions_{global_step:05d}.parquet`` with ``step``,
``prompt``, ``completion``, one column per reward function (here ``acc`` and ``fmt``) and ``advantage``
(PEERS.md §1.5). Run from the repository root: ``python tests/data/foreign/make_trl_fixture.py``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROWS = {
    "completions_00005.parquet": {"step": [5] * 4, "prompt": ["Q: a", "Q: a", "Q: b", "Q: b"],
                                  "completion": ["xy", "y", "z", "zz"], "acc": [1.0, 0.0, 1.0, 1.0],
                                  "fmt": [0.5, 0.5, 0.0, 0.5], "advantage": [0.1, -0.1, 0.0, 0.0]},
    "completions_00010.parquet": {"step": [10] * 2, "prompt": ["Q: c"] * 2, "completion": ["1", "2"],
                                  "acc": [0.0, 1.0], "fmt": [0.0, 0.0], "advantage": [-1.0, 1.0]},
}


def frames() -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame(rows) for name, rows in ROWS.items()}


def main() -> None:
    folder = Path(__file__).resolve().parent / "trl"
    folder.mkdir(exist_ok=True)
    for name, frame in frames().items():
        frame.to_parquet(folder / name, index=False)


if __name__ == "__main__":
    main()
