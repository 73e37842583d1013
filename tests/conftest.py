"""Shared test set-up: offline hubs, headless plots, a seeded generator, and paths to bundled data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOG = Path(__file__).resolve().parent / "data" / "synthetic_rollouts.parquet"  # 4 steps, all columns
GOLDEN_DIR = Path(__file__).resolve().parent / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    """A freshly seeded generator per test (tests never touch the global numpy state)."""
    return np.random.default_rng(12345)


@pytest.fixture
def sample_log() -> Path:
    return SAMPLE_LOG


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
