import dataclasses

import pytest
import torch
from torch.utils.data import DataLoader

from training.data.catalog import build_records, frame_index_of
from training.data.datasets import (ClipDataset, DataRequirementError, FrameDataset, build_identity_index,
                                    collate_samples)
from training.data.storage import LmdbStorage, RgbStorage, UnreadableFileError
from training.data.transforms import build_transform
from training.models.input_spec import InputSpec
from tests.data.synthetic import LABEL_DICT

SPEC = InputSpec(224)
AUG = {"hflip": 0.5, "affine": {"degrees": 10, "translate": 0.1, "scale": [0.9, 1.1]},
       "blur": {"p": 0.5, "sigma": [0.1, 2.0]}, "color_jitter": {"brightness": 0.1, "contrast": 0.1},
       "jpeg": {"p": 0.5, "quality": [40, 100]}}


def records(root, name="TinyFF", split="train"):
    return build_records(name, split, data_root=root, label_dict=LABEL_DICT)


def record(root, key, split="train"):
    return next(r for r in records(root, key.split("/")[0], split) if r.key == key)


def test_frame_samples_carry_keys_indices_masks_and_landmarks(tiny_root):
    dataset = FrameDataset(records(tiny_root), RgbStorage(tiny_root), build_transform({}, SPEC, False),
                           frame_num=3, with_mask=True, with_landmarks=True)
    assert len(dataset) == 3 + 3 + 3  # three videos, three frames each
    samples = {(s["video_key"], s["frame_index"]): s for s in (dataset[i] for i in range(len(dataset)))}
    # 8 frames 0, 5, ..., 35: even sampling keeps the first and the last frame.
    assert sorted(i for k, i in samples if k == "TinyFF/FF-real/001") == [0, 20, 35]
    assert sorted(i for k, i in samples if k == "TinyFF/FF-real/000") == [5, 10, 100]
    real, fake = samples[("TinyFF/FF-real/001", 0)], samples[("TinyFF/FF-DF/000", 0)]
    assert real["image"].shape == (3, 224, 224) and real["label"] == 0 and fake["label"] == 1
    assert real["dataset"] == "TinyFF" and real["identity"] == -1
    assert real["mask"].shape == (1, 224, 224) and real["mask"].sum() == 0  # reals: all-zero mask
    assert fake["mask"].max() == 1.0 and fake["landmarks"].shape == (68, 2)


def test_rgb_and_lmdb_give_identical_tensors(tiny_lmdb_root):
    recs = records(tiny_lmdb_root)
    for train in (False, True):
        tensors = []
        for storage in (RgbStorage(tiny_lmdb_root), LmdbStorage(tiny_lmdb_root)):
            transform = build_transform(AUG, SPEC, train)
            dataset = FrameDataset(recs, storage, transform, frame_num=2, with_mask=True, with_landmarks=True)
            dataset.reseed(7)
            tensors.append([dataset[i] for i in range(len(dataset))])
        for a, b in zip(*tensors):
            for key in ("image", "mask", "landmarks"):
                assert torch.equal(a[key], b[key]), (a["video_key"], key)


def test_identity_indices(tiny_root):
    recs = records(tiny_root, "TinyFlat")
    index = build_identity_index(recs)
    assert index == {"id0": 0, "id1": 1}
    dataset = FrameDataset(recs, RgbStorage(tiny_root), build_transform({}, SPEC, False), frame_num=1,
                           identity_to_index=index)
    assert sorted(dataset[i]["identity"] for i in range(len(dataset))) == [0, 1]


def test_missing_masks_or_landmarks_strict_and_lenient(tiny_root):
    recs = records(tiny_root)
    no_mask_fake = [dataclasses.replace(r, masks=None) if r.label == 1 else r for r in recs]
    transform = build_transform({}, SPEC, False)
    with pytest.raises(DataRequirementError, match=r"TinyFF/FF-DF/000: a fake video without masks"):
        FrameDataset(no_mask_fake, RgbStorage(tiny_root), transform, frame_num=1, with_mask=True)
    lenient = FrameDataset(no_mask_fake, RgbStorage(tiny_root), transform, frame_num=1, with_mask=True,
                           strict=False)
    assert len(lenient) == 2 and lenient.report.skipped[0].what == "TinyFF/FF-DF/000"
    no_landmarks = [dataclasses.replace(r, landmarks=None) for r in recs]
    with pytest.raises(DataRequirementError, match="no landmarks"):
        FrameDataset(no_landmarks, RgbStorage(tiny_root), transform, frame_num=1, with_landmarks=True)


@pytest.mark.parametrize("damage", [b"", b"\x89PNG\r\n\x1a\nbroken"], ids=["zero_byte", "corrupt"])
def test_bad_frame_raises_in_strict_and_is_dropped_in_lenient(fresh_root, damage):
    recs = records(fresh_root)
    bad = "TinyFF/original/c23/frames/001/035.png"
    (fresh_root / bad).write_bytes(damage)
    transform = build_transform({}, SPEC, False)
    strict = FrameDataset(recs, RgbStorage(fresh_root), transform, frame_num=3)
    index = next(i for i, (r, p) in enumerate(strict.samples) if strict.records[r].frames[p] == bad)
    with pytest.raises(UnreadableFileError, match="001/035.png"):
        strict[index]
    lenient = FrameDataset(recs, RgbStorage(fresh_root), transform, frame_num=3, strict=False)
    assert len(lenient) == len(strict) - 1
    assert [item.what for item in lenient.report.skipped] == [bad]
    assert all(lenient.records[r].frames[p] != bad for r, p in lenient.samples)
    clips = ClipDataset(recs, RgbStorage(fresh_root), transform, clip_len=2, clips_per_video=1,
                        train=False, strict=False)
    assert "TinyFF/FF-real/001" not in {clips[i]["video_key"] for i in range(len(clips))}
    assert clips.report.skipped[0].what == "TinyFF/FF-real/001"  # a clip video is dropped whole


def clip_dataset(root, train, storage=None, **kwargs):
    rec = record(root, "TinyFF/FF-real/001")  # 8 frames: 0, 5, ..., 35
    short = record(root, "TinyFF/FF-real/000")  # 3 frames
    options = dict(clip_len=4, clips_per_video=2, train=train, seed=3)
    options.update(kwargs)
    return ClipDataset([rec, short], storage or RgbStorage(root), build_transform(AUG, SPEC, train),
                       **options)


def first_frames(dataset):
    return [dataset[i]["frame_index"] for i in range(len(dataset))]


def test_test_clips_are_deterministic_and_evenly_spaced(tiny_root):
    dataset = clip_dataset(tiny_root, train=False)
    assert len(dataset) == 3  # two clips of the long video, one padded clip of the short one
    assert first_frames(dataset) == [0, 20, 5]  # starts 0 and 4 (the last valid start)
    dataset.set_epoch(5)
    assert first_frames(dataset) == [0, 20, 5]
    sample = dataset[1]
    assert sample["image"].shape == (4, 3, 224, 224) and sample["clip_index"] == 1 and not sample["padded"]


def test_train_clip_offsets_follow_the_epoch(tiny_root):
    dataset = clip_dataset(tiny_root, train=True, clips_per_video=1)
    windows = {}
    for epoch in range(8):
        dataset.set_epoch(epoch)
        windows[epoch] = dataset.clip_window(0)[0]
    assert len({tuple(w) for w in windows.values()}) > 1  # offsets change with the epoch
    dataset.set_epoch(3)
    assert dataset.clip_window(0)[0] == windows[3]  # and are a function of (seed, epoch)
    other = clip_dataset(tiny_root, train=True, clips_per_video=1)
    other.set_epoch(3)
    assert other.clip_window(0)[0] == windows[3]


def test_short_video_clip_is_padded_and_shares_augmentation(tiny_root):
    dataset = clip_dataset(tiny_root, train=True, with_mask=True, with_landmarks=True)
    positions, padded = dataset.clip_window(2)
    assert padded and positions == [0, 1, 2, 2]
    for seed in range(3):
        dataset.reseed(seed)
        sample = dataset[2]
        assert sample["padded"] and sample["frame_index"] == 5
        # Frames 2 and 3 are the same file, so one shared augmentation makes them identical.
        assert torch.equal(sample["image"][2], sample["image"][3])
        assert torch.equal(sample["landmarks"][2], sample["landmarks"][3])
        assert sample["mask"].shape == (4, 1, 224, 224)


def test_collate_stacks_tensors_and_keeps_strings(tiny_root):
    dataset = clip_dataset(tiny_root, train=False)
    batch = collate_samples([dataset[i] for i in range(3)])
    assert batch["image"].shape == (3, 4, 3, 224, 224)
    assert batch["label"].dtype == torch.long and batch["padded"].tolist() == [False, False, True]
    assert batch["video_key"] == ["TinyFF/FF-real/001"] * 2 + ["TinyFF/FF-real/000"]
    assert batch["frame_index"].tolist() == [0, 20, 5]
    with pytest.raises(ValueError, match="cannot batch 'landmarks'"):
        collate_samples([{"landmarks": torch.zeros(68, 2)}, {"landmarks": torch.zeros(81, 2)}])


def test_persistent_lmdb_workers_see_set_epoch(tiny_lmdb_root):
    dataset = clip_dataset(tiny_lmdb_root, train=True, storage=LmdbStorage(tiny_lmdb_root), clips_per_video=1)
    loader = DataLoader(dataset, batch_size=2, num_workers=1, persistent_workers=True,
                        collate_fn=collate_samples, multiprocessing_context="fork")
    firsts = []
    for epoch in (0, 4):  # with seed 3 the long video's clip starts at position 4, then 0
        dataset.set_epoch(epoch)
        seen = [i for batch in loader for i in batch["frame_index"].tolist()]
        expected = frame_index_of(dataset.records[0].frames[dataset.clip_window(0)[0][0]])
        assert seen[0] == expected
        firsts.append(expected)
    assert firsts[0] != firsts[1]
