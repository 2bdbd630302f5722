"""Frame sampling over the decoded length and the failure reasons of bad files."""
import pytest

from preprocessing.video import (VideoReadError, companion_mask_video, evenly_spaced_indices, find_videos,
                                 sample_video)
from tests.preprocessing.video_fixtures import cut_file, write_avi


def test_evenly_spaced_indices():
    assert evenly_spaced_indices(100, 5) == [0, 24, 49, 74, 99]
    assert evenly_spaced_indices(3, 32) == [0, 1, 2]
    assert evenly_spaced_indices(0, 32) == []


def test_sample_uses_container_count_when_it_is_right(tmp_path):
    write_avi(tmp_path / "v.avi", 40)
    sampled = sample_video(tmp_path / "v.avi", 8)
    assert (sampled.decoded_length, sampled.passes) == (40, 1)
    assert sorted(sampled.frames) == sampled.indices == evenly_spaced_indices(40, 8)


def test_sample_replans_over_the_decoded_length_when_the_container_lies(tmp_path):
    write_avi(tmp_path / "v.avi", 40)
    cut_file(tmp_path / "v.avi", 0.9)  # a few frames short: within the truncation tolerance
    sampled = sample_video(tmp_path / "v.avi", 8)
    assert sampled.container_length == 40 and sampled.decoded_length < 40 and sampled.passes == 2
    assert sampled.indices == evenly_spaced_indices(sampled.decoded_length, 8)
    assert sorted(sampled.frames) == sampled.indices


@pytest.mark.parametrize("damage, reason", [("zero", "zero-byte"), ("garbage", "unreadable"),
                                            ("half", "truncated")])
def test_bad_files_have_a_reason(tmp_path, damage, reason):
    path = tmp_path / "v.avi"
    write_avi(path, 40)
    if damage == "zero":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01not a video" * 300)
    else:
        cut_file(path, 0.5)
    with pytest.raises(VideoReadError) as raised:
        sample_video(path, 8)
    assert raised.value.reason == reason and str(path) in str(raised.value)


def test_find_videos_skips_mask_videos_and_finds_them_as_companions(tmp_path):
    videos = tmp_path / "Deepfakes" / "c23" / "videos"
    masks = tmp_path / "Deepfakes" / "masks" / "videos"
    for folder in (videos, masks):
        folder.mkdir(parents=True)
        (folder / "000_003.mp4").write_bytes(b"x")
    assert find_videos(tmp_path) == [videos / "000_003.mp4"]
    assert companion_mask_video(videos / "000_003.mp4") == masks / "000_003.mp4"
