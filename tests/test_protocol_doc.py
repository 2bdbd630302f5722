"""docs/PROTOCOL.md: every flag its table names exists, and every ``key: value`` it gives is accepted."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PROTOCOL.md"
CLI_SOURCES = ("preprocessing/preprocess.py", "training/test.py", "training/train.py")
RECIPE = ROOT / "configs" / "detector" / "gend_clip_vitl14.yaml"


def flag_cells():
    """The last column of the protocol table, one string per row."""
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    assert len(rows) > 10, "docs/PROTOCOL.md lost its table"
    return [re.split(r"(?<!\\)\|", row.strip().strip("|"))[-1] for row in rows[1:]]


def tokens(kind):
    found = []
    for cell in flag_cells():
        for token in re.findall(r"`([^`]+)`", cell):
            if kind == "config" and re.match(r"^(data|train|test|model|augment)\.\w", token):
                found.append(token)
            if kind == "cli" and "--" in token:
                found.append(re.search(r"--\w+", token).group(0))
    return found


def test_the_table_names_config_keys_and_cli_flags():
    assert "test.video_aggregation: median" in tokens("config") and "--crop_profile" in tokens("cli")


@pytest.mark.parametrize("flag", sorted(set(tokens("cli"))))
def test_cli_flag_exists(flag):
    sources = "".join((ROOT / path).read_text(encoding="utf-8") for path in CLI_SOURCES)
    assert f'"{flag}"' in sources, f"docs/PROTOCOL.md names {flag}, which no CLI in {CLI_SOURCES} defines"


@pytest.mark.parametrize("token", sorted(set(tokens("config"))))
def test_config_key_is_valid(token):
    from training.config import load_config

    key, _, value = (part.strip() for part in token.partition(":"))
    override = f"{key}={value}" if value else None
    if override is None:  # a key without a value: it must exist (load_config rejects unknown keys)
        from training.config import get_by_path

        config = load_config(RECIPE)
        missing = object()
        assert get_by_path(config, key, missing) is not missing, f"docs/PROTOCOL.md names unknown key {key}"
        return
    load_config(RECIPE, [override])  # unknown keys and values outside their choices raise ConfigError


def test_off_and_on_are_strings_in_configs():
    # `train.amp: off` (a documented choice) must not become YAML 1.1's boolean False.
    from training.config import load_yaml

    assert load_yaml("amp: off\nx: on\ny: no\nz: true\nw: False") == {"amp": "off", "x": "on", "y": "no",
                                                                     "z": True, "w": False}
