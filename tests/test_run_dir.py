"""One run per run directory (issue 17 item 1): a second start is refused, --overwrite starts clean,
a failed start leaves nothing behind, --resume keeps the original command's flags."""
from __future__ import annotations

import json

import pytest

from training import train as train_cli
from training.cli import EXIT_USAGE, run_cli
from training.data.catalog import CatalogError
from training.engine.run_dir import RunDir, RunDirError


def run_args(tiny_config, demo_root, run_dir, *extra, opts=()):
    return ["--detector_path", str(tiny_config), "--run_dir", str(run_dir), "--device", "cpu", *extra,
            "--opts", f"data.root={demo_root}", "train.epochs=1", "train.max_steps=2", *opts]


def test_layout_paths_and_checkpoint_lookup(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.best == tmp_path / "r" / "checkpoints" / "best.pt"
    assert run.predictions("DemoFF") == tmp_path / "r" / "test" / "DemoFF" / "predictions.csv"
    assert RunDir.of(run.last).root == run.root and RunDir.of(run.root).root == run.root
    run.check_new()  # absent: fine
    run.root.mkdir()
    (run.root / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError, match="does not hold a run"):
        run.prepare_new(overwrite=True)  # never deletes a folder that is not a run
    assert (run.root / "notes.txt").read_text() == "mine"


def test_second_start_is_refused_and_overwrite_starts_clean(tiny_config, demo_root, tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    assert train_cli.main(run_args(tiny_config, demo_root, run.root)) == 0
    assert run.metrics.is_file() and run.test.is_dir()
    before = {path: path.stat().st_mtime_ns for path in run.root.rglob("*")}

    with pytest.raises(RunDirError, match=r"already holds a run.*--resume.*--overwrite"):
        train_cli.main(run_args(tiny_config, demo_root, run.root, "--no_test"))
    assert {path: path.stat().st_mtime_ns for path in run.root.rglob("*")} == before  # nothing touched
    capsys.readouterr()
    assert run_cli(train_cli.main, run_args(tiny_config, demo_root, run.root)) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("error: --run_dir")

    assert train_cli.main(run_args(tiny_config, demo_root, run.root, "--no_test", "--overwrite")) == 0
    # Before: the old metrics.json / table / test/ stayed, val_history read [1, 1], tb/ had two event files.
    assert not run.metrics.exists() and not run.test.exists() and not run.table.with_suffix(".md").exists()
    assert [entry["epoch"] for entry in json.loads(run.val_history.read_text())] == [1]
    assert len(list(run.tensorboard.iterdir())) == 1
    assert run.log.read_text().count("Detector clip:") == 1


@pytest.mark.parametrize("bad", ["dataset", "test_dataset", "weights"])
def test_a_failed_start_leaves_no_run_directory(tiny_config, demo_root, tmp_path, bad):
    run_dir = tmp_path / "run"
    if bad == "dataset":
        extra, opts, error, message = ("--train_dataset", "DemoF"), (), CatalogError, "Did you mean 'DemoFF'"
    elif bad == "test_dataset":  # checked before training, not after it
        extra, opts, error, message = ("--test_dataset", "DemoCFD"), (), CatalogError, "Did you mean 'DemoCDF'"
    else:
        extra, opts = (), (f"model.backbone.pretrained={tmp_path / 'missing.safetensors'}",)
        error, message = Exception, "missing.safetensors"
    with pytest.raises(error, match=message):
        train_cli.main(run_args(tiny_config, demo_root, run_dir, *extra, opts=opts))
    assert not run_dir.exists()


def test_resume_keeps_every_flag_of_the_original_command(tiny_config, demo_root, tmp_path):
    run = RunDir(tmp_path / "run")
    assert train_cli.main(run_args(tiny_config, demo_root, run.root, "--no_test")) == 0
    assert json.loads(run.command.read_text())["no_test"] is True
    assert train_cli.main(["--resume", str(run.root)]) == 0  # --device cpu and --no_test come back too
    assert not run.metrics.exists()  # before: --no_test was lost and the resumed run tested
    assert "Resuming with" in run.log.read_text()


def test_resume_of_a_directory_without_a_run_says_what_is_missing(tmp_path):
    with pytest.raises(RunDirError, match=r"no checkpoints/last.pt"):
        train_cli.main(["--resume", str(tmp_path)])


def test_a_resume_that_fails_says_why_in_train_log(tiny_config, demo_root, tmp_path):
    run = RunDir(tmp_path / "run")
    assert train_cli.main(run_args(tiny_config, demo_root, run.root, "--no_test")) == 0
    with pytest.raises(CatalogError):
        train_cli.main(["--resume", str(run.root), "--train_dataset", "DemoFX"])
    assert "Run ended by CatalogError: Dataset JSON DemoFX.json not found" in run.log.read_text()
