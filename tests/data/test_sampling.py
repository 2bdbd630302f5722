import numpy as np
import pytest

from training.data.sampling import clip_positions, clip_starts, even_frame_positions, num_clips_for


@pytest.mark.parametrize("n, k", [(32, 8), (300, 32), (10, 9), (100, 2), (7, 3)])
def test_even_positions_span_the_whole_video(n, k):
    positions = even_frame_positions(n, k)
    assert len(positions) == k == len(set(positions))
    assert positions[0] == 0 and positions[-1] == n - 1  # not the first k frames
    gaps = np.diff(positions)
    assert gaps.max() - gaps.min() <= 1  # evenly spaced up to rounding
    assert positions == sorted(positions)


def test_even_positions_edge_cases():
    assert even_frame_positions(5, 8) == [0, 1, 2, 3, 4]  # fewer frames than asked: all of them
    assert even_frame_positions(5, 0) == [0, 1, 2, 3, 4]  # k <= 0: all frames
    assert even_frame_positions(5, -1) == [0, 1, 2, 3, 4]
    assert even_frame_positions(0, 8) == []
    assert even_frame_positions(9, 1) == [4]  # one frame: the middle one


def test_test_clips_are_deterministic_and_span_the_video():
    first = clip_starts(40, 8, 4, train=False, rng=np.random.default_rng(0))
    second = clip_starts(40, 8, 4, train=False, rng=np.random.default_rng(99))
    assert first == second and not first.padded
    assert first.starts[0] == 0 and first.starts[-1] == 40 - 8
    assert clip_starts(40, 8, 1, train=False, rng=None).starts == [16]  # the middle clip


def test_train_clips_change_with_the_rng_and_stay_in_range():
    draws = {tuple(clip_starts(100, 8, 3, train=True, rng=np.random.default_rng(seed)).starts)
             for seed in range(20)}
    assert len(draws) > 5
    for starts in draws:
        assert all(0 <= s <= 92 for s in starts) and list(starts) == sorted(starts)
    again = clip_starts(100, 8, 3, train=True, rng=np.random.default_rng(3))
    assert again == clip_starts(100, 8, 3, train=True, rng=np.random.default_rng(3))


def test_short_video_is_padded_by_repeating_the_last_frame():
    plan = clip_starts(3, 8, 4, train=True, rng=np.random.default_rng(0))
    assert plan.padded and plan.starts == [0]
    assert clip_positions(0, 8, 3) == [0, 1, 2, 2, 2, 2, 2, 2]


def test_clip_counts():
    assert num_clips_for(40, 8, 0) == 5  # every non-overlapping clip
    assert num_clips_for(10, 8, 5) == 3  # never more than distinct starts
    assert num_clips_for(3, 8, 4) == 1
    with pytest.raises(ValueError):
        num_clips_for(0, 8, 1)
