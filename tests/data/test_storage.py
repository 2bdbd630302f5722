import multiprocessing
import pickle

import numpy as np
import pytest

from preprocessing import to_lmdb
from training.cli import EXIT_USAGE, run_cli
from training.data.catalog import load_dataset_json, referenced_paths
from training.data.storage import (LMDB_META_KEY, LmdbStorage, RgbStorage, UnreadableFileError,
                                   build_storage, lmdb_key)
from tests.data.synthetic import frame_image


def test_rgb_reads_rgb_uint8_and_absolute_paths(tiny_root):
    storage = RgbStorage(tiny_root)
    relative = "TinyFlat/Celeb-real/frames/id0_0000/002.png"
    image = storage.read_image(relative)
    assert image.dtype == np.uint8 and image.shape == (256, 256, 3)
    assert np.array_equal(image, frame_image(8, 2))  # written as RGB → BGR PNG, read back as RGB
    assert np.array_equal(storage.read_image(str(tiny_root / relative)), image)
    landmarks = storage.read_landmarks("TinyFlat/Celeb-real/landmarks/id0_0000/002.npy")
    assert landmarks.dtype == np.float32 and landmarks.shape == (68, 2)
    mask = storage.read_mask("TinyFlat/Celeb-synthesis/masks/id0_id1_0000/000.png")
    assert mask.dtype == np.uint8 and mask.shape == (256, 256) and set(np.unique(mask)) == {0, 255}


def test_lmdb_key_rule(tmp_path):
    assert lmdb_key("./A/frames/v/001.png", tmp_path) == "A/frames/v/001.png"
    assert lmdb_key("A\\frames\\v\\001.png", tmp_path) == "A/frames/v/001.png"
    assert lmdb_key(str(tmp_path / "A/frames/v/001.png"), tmp_path) == "A/frames/v/001.png"
    assert lmdb_key("/elsewhere/A/001.png", tmp_path) == "/elsewhere/A/001.png"


def test_lmdb_returns_exactly_what_rgb_returns(tiny_lmdb_root):
    rgb, lmdb_storage = RgbStorage(tiny_lmdb_root), LmdbStorage(tiny_lmdb_root)
    for name in ("TinyFF", "TinyFlat"):
        for kind, path in referenced_paths(load_dataset_json(tiny_lmdb_root, name)):
            a, b = rgb.read(kind, path, name), lmdb_storage.read(kind, path, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), path


def test_lmdb_stores_png_bytes_and_self_describing_npy(tiny_lmdb_root):
    storage = LmdbStorage(tiny_lmdb_root)
    png, _ = storage.read_bytes("TinyFF/original/c23/frames/002/000.png", "TinyFF")
    assert png == (tiny_lmdb_root / "TinyFF/original/c23/frames/002/000.png").read_bytes()
    npy, _ = storage.read_bytes("TinyFF/original/c23/landmarks/002/000.npy", "TinyFF")
    assert npy.startswith(b"\x93NUMPY")  # header with dtype and shape, not a raw buffer
    with storage._env("TinyFF").begin() as txn:
        assert b'"dataset": "TinyFF"' in txn.get(LMDB_META_KEY)
    assert not list((tiny_lmdb_root / "lmdb").glob(".*partial*"))  # the temp dir was renamed away


def _read_in_child(storage, queue):
    queue.put(storage.read_image("TinyFF/original/c23/frames/002/001.png", "TinyFF").sum())


def test_lmdb_reopens_after_fork_and_pickles_without_handles(tiny_lmdb_root):
    storage = LmdbStorage(tiny_lmdb_root)
    expected = storage.read_image("TinyFF/original/c23/frames/002/001.png", "TinyFF").sum()
    assert storage._envs  # opened in this process
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_read_in_child, args=(storage, queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0 and queue.get(timeout=5) == expected
    assert pickle.loads(pickle.dumps(storage))._envs == {}


# --------------------------------------------------------------------------- errors


def test_rgb_errors_name_the_file(fresh_root):
    storage = RgbStorage(fresh_root)
    with pytest.raises(UnreadableFileError, match=r"missing\.png.*does not exist.*data\.root") as info:
        storage.read_image("TinyFF/missing.png")
    assert info.value.path == "TinyFF/missing.png"
    frame = fresh_root / "TinyFF/original/c23/frames/002/000.png"
    frame.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match=r"002/000\.png.*empty \(0 bytes\)"):
        storage.read_image("TinyFF/original/c23/frames/002/000.png")
    frame.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(UnreadableFileError, match=r"002/000\.png.*corrupt or not an image"):
        storage.read_image("TinyFF/original/c23/frames/002/000.png")
    np.save(fresh_root / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(UnreadableFileError, match=r"bad\.npy' have shape \(3, 3\)"):
        storage.read_landmarks("bad.npy")


def test_lmdb_errors_name_db_key_and_fix(tiny_lmdb_root, tmp_path):
    storage = LmdbStorage(tiny_lmdb_root)
    with pytest.raises(UnreadableFileError) as info:
        storage.read_image("TinyFF/not/there.png", "TinyFF")
    message = str(info.value)
    assert "TinyFF.lmdb" in message and "key 'TinyFF/not/there.png'" in message
    assert "python -m preprocessing.to_lmdb" in message
    with pytest.raises(FileNotFoundError, match=r"Nope\.lmdb.*preprocessing\.to_lmdb .*--dataset Nope"):
        storage.read_image("x.png", "Nope")
    with pytest.raises(ValueError, match="dataset name"):
        storage.read_image("x.png")
    with pytest.raises(ValueError, match=r"Unknown storage 'disk'.*\['lmdb', 'rgb'\]"):
        build_storage("disk", tmp_path)


# --------------------------------------------------------------------------- CLI


def test_convert_replaces_atomically_and_refuses_corrupt_sources(fresh_root, capsys):
    root = str(fresh_root)
    assert to_lmdb.main(["--data_root", root, "--dataset", "TinyFlat"]) == 0
    target = fresh_root / "lmdb" / "TinyFlat.lmdb"
    first = (target / "data.mdb").stat().st_ino
    assert to_lmdb.main(["convert", "--data_root", root, "--dataset", "TinyFlat"]) == 0
    assert (target / "data.mdb").stat().st_ino != first  # rebuilt, swapped in
    assert sorted(p.name for p in (fresh_root / "lmdb").iterdir()) == ["TinyFlat.lmdb"]

    (fresh_root / "TinyFlat/Celeb-real/frames/id0_0000/003.png").write_bytes(b"")
    assert run_cli(to_lmdb.main, ["--data_root", root, "--dataset", "TinyFlat"]) == EXIT_USAGE
    assert "id0_0000/003.png" in capsys.readouterr().err
    assert sorted(p.name for p in (fresh_root / "lmdb").iterdir()) == ["TinyFlat.lmdb"]  # old one kept
    assert not (fresh_root / "lmdb" / "TinyFF.lmdb").exists()


def test_validate_reports_counts_and_problems(fresh_root, capsys):
    root = str(fresh_root)
    assert to_lmdb.main(["validate", "--data_root", root, "--dataset", "TinyFF"]) == 0
    out = capsys.readouterr().out
    assert "[train/c23] 3 videos" in out and "FF-DF=1, FF-real=2" in out and "[train/c40] 2 videos" in out
    assert to_lmdb.main(["--data_root", root, "--dataset", "TinyFF"]) == 0
    assert to_lmdb.main(["validate", "--data_root", root, "--dataset", "TinyFF", "--storage", "lmdb"]) == 0
    capsys.readouterr()

    (fresh_root / "TinyFF/Deepfakes/c23/masks/000/002.png").unlink()
    assert to_lmdb.main(["validate", "--data_root", root, "--dataset", "TinyFF"]) == 1
    out = capsys.readouterr().out
    assert "UNREADABLE" in out and "masks/000/002.png" in out and "1 problem(s)" in out

    assert run_cli(to_lmdb.main, ["validate", "--data_root", root, "--dataset", "Nope"]) == EXIT_USAGE
    assert "Nope.json" in capsys.readouterr().err
