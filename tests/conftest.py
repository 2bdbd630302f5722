"""Shared fixtures: a small demo benchmark (generated once per session) and the tiny config."""
from __future__ import annotations

from pathlib import Path

import pytest

TINY_CONFIG = Path(__file__).parent / "fixtures" / "tiny_clip.yaml"


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """DemoFF + DemoCDF at 10 % of the full size (a few seconds to generate)."""
    from preprocessing.demo.generate import generate_demo

    root = tmp_path_factory.mktemp("demo_data")
    generate_demo(root, seed=0, scale=0.1, datasets=["DemoFF", "DemoCDF"])
    return root


@pytest.fixture
def tiny_config() -> Path:
    return TINY_CONFIG
