"""Fixtures: the tiny synthetic dataset of tests/data/synthetic.py."""
from __future__ import annotations

import pytest

from tests.data.synthetic import build_all


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Read-only shared data root (TinyFF + TinyFlat). Tests that modify data use ``fresh_root``."""
    return build_all(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="session")
def tiny_lmdb_root(tiny_root):
    """``tiny_root`` with both datasets converted to LMDB."""
    from preprocessing.to_lmdb import main

    for name in ("TinyFF", "TinyFlat"):
        assert main(["--data_root", str(tiny_root), "--dataset", name]) == 0
    return tiny_root


@pytest.fixture
def fresh_root(tmp_path):
    return build_all(tmp_path / "datasets")
