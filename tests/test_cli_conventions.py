"""One CLI convention (README "CLI conventions"; issue 17 items 3, 5, 8): every command-line tool
answers --help with exit 0, a usage line as the user types it and help for every flag; known user
errors are one line without a traceback (exit 2, traceback with --debug); partial failures exit 1,
interrupted runs 130/143."""
from __future__ import annotations

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import (DEBUG_ENV, EXIT_INTERNAL, EXIT_OK, EXIT_PARTIAL, EXIT_SIGINT, EXIT_USAGE, invocation,
                          run_cli)

REPO = Path(__file__).resolve().parent.parent


def cli_files():
    """Every module with a ``main`` that runs as a program: new CLIs are covered without editing this list."""
    found = []
    for folder in ("training", "preprocessing", "analysis", "scripts"):
        for path in sorted((REPO / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            if re.search(r"^def main\(", text, re.M) and 'if __name__ == "__main__":' in text:
                found.append(path.relative_to(REPO).as_posix())
    return found


CLIS = cli_files()
SUBCOMMANDS = {"preprocessing/to_lmdb.py": [["validate"]], "preprocessing/rearrange.py": [["check"]]}


def module_of(relative: str):
    return importlib.import_module(relative[:-len(".py")].replace("/", "."))


def parsers_of(relative, monkeypatch, capsys, prefix=()):
    """The parsers ``main([*prefix, "--help"])`` builds, and what it printed."""
    made = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, args=None, namespace=None):
        made.append(self)
        return original(self, args, namespace)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    with pytest.raises(SystemExit) as exit_info:
        module_of(relative).main([*prefix, "--help"])
    return made, exit_info.value.code, capsys.readouterr().out


def test_every_cli_is_found():
    assert {"training/train.py", "training/test.py", "training/infer.py", "preprocessing/preprocess.py",
            "analysis/plotting.py", "analysis/tables.py", "scripts/ablation.py"} <= set(CLIS)


@pytest.mark.parametrize("relative", CLIS)
def test_help_exits_0_with_usage_and_help_for_every_flag(relative, monkeypatch, capsys):
    for prefix in [[]] + SUBCOMMANDS.get(relative, []):
        parsers, code, out = parsers_of(relative, monkeypatch, capsys, prefix)
        assert code == 0, f"{relative} {prefix} --help exited {code}"
        expected = " ".join([invocation(str(REPO / relative)), *prefix])
        assert out.startswith(f"usage: {expected}"), out[:200]
        assert "--debug" in out
        undocumented = [action.option_strings or action.dest for parser in parsers for action in parser._actions
                        if not isinstance(action, argparse._HelpAction) and not action.help]
        assert not undocumented, f"{relative} {prefix}: flags without help: {undocumented}"


def test_shard_help_shows_its_form(monkeypatch, capsys):
    _, _, out = parsers_of("preprocessing/preprocess.py", monkeypatch, capsys)
    assert re.search(r"--shard I/N", out)


def test_dataset_flags_take_several_names(monkeypatch, capsys):
    """--dataset is nargs='+' wherever a tool can work on several datasets."""
    for relative, prefix in [("preprocessing/to_lmdb.py", []), ("preprocessing/to_lmdb.py", ["validate"]),
                             ("preprocessing/resize_cache.py", []), ("preprocessing/rearrange.py", ["check"])]:
        parsers, _, _ = parsers_of(relative, monkeypatch, capsys, prefix)
        (action,) = [a for p in parsers for a in p._actions if "--dataset" in a.option_strings]
        assert action.nargs == "+", (relative, prefix)


def run(args, **env):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_train_sh_help_exits_0_and_library_modules_answer_help():
    shell = run(["bash", "scripts/train.sh", "--help"])
    assert shell.returncode == 0 and shell.stdout.startswith("usage: scripts/train.sh"), shell.stderr
    for module in ("analysis.plotting", "analysis.tables"):
        done = run([sys.executable, "-m", module, "--help"])
        assert done.returncode == 0 and done.stdout.startswith(f"usage: python -m {module}"), done.stderr


# -- errors and exit status ----------------------------------------------------------------------


def test_user_errors_are_one_line_without_traceback_unless_debug(tmp_path, capsys, monkeypatch):
    from training import test as test_cli

    missing = tmp_path / "runs" / "nope"
    argv = ["--weights_path", str(missing), "--out", str(tmp_path / "o")]
    assert run_cli(test_cli.main, argv) == EXIT_USAGE
    err = capsys.readouterr().err
    # Before: "No config for ...: pass --detector_path", a SystemExit without the real problem.
    assert err.strip() == (f"error: --weights_path {missing} does not exist. Pass a run directory (runs/<run>) "
                           f"or a checkpoint file (runs/<run>/checkpoints/best.pt).")
    assert run_cli(test_cli.main, argv + ["--debug"]) == EXIT_USAGE
    assert "Traceback (most recent call last)" in capsys.readouterr().err
    monkeypatch.setenv(DEBUG_ENV, "1")
    assert run_cli(test_cli.main, argv) == EXIT_USAGE
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_random_bytes_checkpoint_names_the_file(tmp_path, capsys):
    from training import test as test_cli

    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(4096))
    code = run_cli(test_cli.main, ["--weights_path", str(junk), "--detector_path",
                                   str(REPO / "tests" / "fixtures" / "tiny_clip.yaml"), "--out", str(tmp_path / "o"),
                                   "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err
    # Before: "IndexError: pop from empty list" (or another unpickler error) without the file's name.
    assert err.startswith("error: ") and str(junk) in err and len(err.strip().splitlines()) <= 6


def test_config_typo_is_one_line(tmp_path, capsys):
    from training import train as train_cli

    code = run_cli(train_cli.main, ["--detector_path", str(REPO / "tests" / "fixtures" / "tiny_clip.yaml"),
                                    "--run_dir", str(tmp_path / "r"), "--opts", "train.epoch=3"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err and "did you mean" in err.lower()
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_exit_status_convention():
    def interrupted(_argv):
        raise KeyboardInterrupt

    def bug(_argv):
        raise IndexError("pop from empty list")

    assert run_cli(lambda argv: None, []) == EXIT_OK
    assert run_cli(lambda argv: EXIT_PARTIAL, []) == EXIT_PARTIAL
    assert run_cli(interrupted, []) == EXIT_SIGINT == 130
    assert run_cli(bug, []) == EXIT_INTERNAL  # a bug keeps its traceback and is not a user error
    assert run_cli(lambda argv: (_ for _ in ()).throw(SystemExit("bad flag value")), []) == EXIT_USAGE


def test_preprocess_with_a_failed_video_exits_1(tmp_path, capsys):
    """Before: "1 failed" and exit 0 (infer.py exits 1 for the same case)."""
    from preprocessing import preprocess

    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "corrupt.mp4").write_bytes(os.urandom(4000))
    code = run_cli(preprocess.cli, ["--input", str(videos), "--workers", "0", "--no_progress"])
    assert code == EXIT_PARTIAL
    assert "1 failed" in capsys.readouterr().out


def test_unknown_dataset_suggests_the_close_name(tmp_path, capsys):
    from preprocessing import to_lmdb

    (tmp_path / "json").mkdir()
    (tmp_path / "json" / "DemoFF.json").write_text("{}")
    assert run_cli(to_lmdb.main, ["validate", "--data_root", str(tmp_path), "--dataset", "DemoF"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Did you mean 'DemoFF'?" in err and "Traceback" not in err


def test_missing_label_message_gives_the_fix_that_works_for_a_run(tmp_path):
    """Before: "add it under data.label_dict in configs/_base_/datasets.yaml", which a run directory
    (test.py --weights_path runs/<run>) never reads: it uses its own config.yaml."""
    import json

    from training.config import load_config
    from training.data.catalog import CatalogError, build_records

    (tmp_path / "json").mkdir()
    video = {"label": "NewFake", "frames": ["NewSet/v/000.png", "NewSet/v/001.png"]}
    (tmp_path / "json" / "NewSet.json").write_text(json.dumps({"NewSet": {"NewFake": {"test": {"v": video}}}}))
    run_config = tmp_path / "config.yaml"  # stands for runs/<run>/config.yaml
    run_config.write_text((REPO / "tests" / "fixtures" / "tiny_clip.yaml").read_text().replace(
        "../../configs", str(REPO / "configs")))
    labels = load_config(run_config)["data"]["label_dict"]
    with pytest.raises(CatalogError, match=r"--opts data\.label_dict\.NewFake=0") as error:
        build_records("NewSet", "test", data_root=tmp_path, label_dict=labels)
    assert "run directory" in str(error.value)
    fixed = load_config(run_config, ["data.label_dict.NewFake=1"])["data"]["label_dict"]  # the suggested fix
    (record,) = build_records("NewSet", "test", data_root=tmp_path, label_dict=fixed)
    assert record.label == 1


class _BrokenFrames:
    """A dataset whose frame is missing, read in a DataLoader worker (which re-raises with its traceback)."""

    def __len__(self):
        return 2

    def __getitem__(self, index):
        from training.data.storage import UnreadableFileError

        raise UnreadableFileError("frame DemoFF/v/001.png does not exist; re-run preprocessing for this video",
                                  "DemoFF/v/001.png")


def test_a_data_loader_worker_error_is_one_line(capsys):
    from torch.utils.data import DataLoader

    def main(_argv):
        list(DataLoader(_BrokenFrames(), num_workers=1))

    assert run_cli(main, []) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == ("error: frame DemoFF/v/001.png does not exist; re-run preprocessing "
                                               "for this video")


def test_tables_cli_combines_runs_and_test_outputs(tmp_path, capsys):
    """`python -m analysis.tables` (before: no CLI, --help printed nothing)."""
    import json

    from analysis.tables import main as tables_main
    from analysis.tables import read_table_csv

    metrics = {"DemoFF": {"frame_auc": 0.9, "video_auc": 0.95}, "DemoCDF": {"frame_auc": 0.7, "video_auc": 0.8}}
    (tmp_path / "runA").mkdir()
    (tmp_path / "runA" / "metrics.json").write_text(json.dumps(metrics))  # a run directory: one row
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "metrics.json").write_text(json.dumps({"other": metrics}))  # test.py --out: rows
    out = tmp_path / "table"
    assert run_cli(tables_main, ["--results", str(tmp_path / "runA"), str(tmp_path / "cmp"), "--out", str(out)]) == 0
    rows = read_table_csv(f"{out}.csv")
    assert list(rows) == ["runA", "other"] and rows["runA"]["DemoCDF"]["video_auc"] == 0.8
    capsys.readouterr()
    assert run_cli(tables_main, ["--results", str(tmp_path / "nope"), "--out", str(out)]) == EXIT_USAGE
    assert "nope not found: pass run directories" in capsys.readouterr().err


def test_unknown_registered_name_is_a_user_error(tmp_path, capsys):
    """Registry look-ups (detector, backbone, dataset adapter): before, a KeyError traceback (exit 70 now)."""
    from preprocessing.rearrange import main as rearrange_main

    code = run_cli(rearrange_main, ["--dataset", "FaceForensic++", "--source_dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "Traceback" not in err
    assert err.startswith("error: Unknown dataset adapter 'FaceForensic++'. Did you mean 'FaceForensics++'?")


def test_a_bad_value_found_while_building_the_detector_is_one_line(tmp_path, capsys):
    """Config values checked where they are used (heads, schedules, towers ...) raise ConfigError
    (training/errors.py), not a bare ValueError that printed a traceback."""
    from training import train as train_cli

    code = run_cli(train_cli.main, ["--detector_path", str(REPO / "tests" / "fixtures" / "tiny_clip.yaml"),
                                    "--run_dir", str(tmp_path / "r"), "--device", "cpu", "--opts",
                                    f"data.root={tmp_path}", "data.train_dataset=[]", "data.test_dataset=[]",
                                    "model.head=bogus"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.strip() == "error: model.head 'bogus' is not one of linear, ln_mlp."
    assert not (tmp_path / "r").exists()
