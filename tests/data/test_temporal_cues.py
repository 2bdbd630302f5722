"""scripts/temporal_cues.py: the hand-made temporal statistics of docs/TEMPORAL.md."""
import numpy as np


def test_an_alternating_face_flickers_and_a_steady_drift_does_not():
    from scripts.temporal_cues import video_statistics

    steps = np.arange(8, dtype=np.float32)
    flicker = np.stack([100 + 4 * (-1) ** steps, np.full(8, 90.0)], axis=1)
    drift = np.stack([100 + 2 * steps, np.full(8, 90.0)], axis=1)
    assert video_statistics(flicker) == {"second_difference": 16.0, "sign_change_fraction": 1.0}
    assert video_statistics(drift) == {"second_difference": 0.0, "sign_change_fraction": 0.0}


def test_brightness_series_reads_the_centre_half():
    from scripts.temporal_cues import brightness_series

    frame = np.zeros((8, 8, 3), np.uint8)
    frame[2:6, 2:6] = 200
    np.testing.assert_allclose(brightness_series([frame]), [[200.0, 50.0]])
