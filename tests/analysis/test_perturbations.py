"""Robustness degradations: each changes the image by the intended amount, deterministically."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.data.perturbations import (SEVERITIES, Perturbation, PerturbedStorage, apply, derive_seed,
                                         downscale_upscale, gaussian_blur, gaussian_noise, jpeg, jpeg_bytes,
                                         parse_perturbations)
from training.data.storage import RgbStorage


def textured_image(size: int = 128) -> np.ndarray:
    """Gradients, hard edges and fine texture: every degradation has something to remove."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    base = 40 + 80 * x / size + 60 * y / size
    checker = ((x // 8 + y // 8) % 2) * 50
    texture = cv2.GaussianBlur(rng.normal(0, 25, (size, size)).astype(np.float32), (0, 0), 0.8)
    rgb = np.stack([base + checker + texture, 0.8 * base + texture, 255 - base - 0.5 * checker + texture], -1)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def high_frequency_energy(image: np.ndarray) -> float:
    """Power of the grey image above a quarter of the Nyquist frequency (Hann-windowed, so the
    wrap-around edge of the FFT adds no energy that blurring cannot remove)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    h, w = grey.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2((grey - grey.mean()) * window))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w)), indexing="ij")
    return float(spectrum[np.hypot(fy, fx) > 0.125].sum())


IMAGE = textured_image()


@pytest.mark.parametrize("perturbation", parse_perturbations([]), ids=lambda p: p.name)
def test_every_default_perturbation_keeps_the_format_and_changes_the_image(perturbation):
    out = perturbation(IMAGE, key="video/000.png")
    assert out.shape == IMAGE.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - IMAGE.astype(int)).mean() > 0.5
    assert sum(len(v) for v in SEVERITIES.values()) == len(parse_perturbations([])) == 15


def test_lower_jpeg_quality_means_a_smaller_file_and_a_larger_error():
    qualities = SEVERITIES["jpeg"]
    sizes = [len(jpeg_bytes(IMAGE, q)) for q in qualities]
    errors = [np.mean((jpeg(IMAGE, q).astype(float) - IMAGE) ** 2) for q in qualities]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert errors == sorted(errors) and len(set(errors)) == len(errors)


def test_larger_blur_sigma_removes_more_high_frequency_energy():
    energies = [high_frequency_energy(IMAGE)] + [high_frequency_energy(gaussian_blur(IMAGE, s))
                                                 for s in SEVERITIES["blur"]]
    assert all(a > 2 * b for a, b in zip(energies, energies[1:])), energies


@pytest.mark.parametrize("sigma", SEVERITIES["noise"])
def test_noise_sigma_matches_the_measured_standard_deviation(sigma):
    grey = np.full((256, 256, 3), 128, np.uint8)  # mid-grey: no clipping at sigma <= 20
    difference = gaussian_noise(grey, sigma, np.random.default_rng(1)).astype(float) - 128
    expected = np.sqrt(sigma ** 2 + 1 / 12)  # rounding to integers adds 1/12 variance
    assert difference.std() == pytest.approx(expected, rel=0.02)
    assert abs(difference.mean()) < 0.1


def test_smaller_resize_factor_removes_more_high_frequency_energy():
    energies = [high_frequency_energy(IMAGE)] + [high_frequency_energy(downscale_upscale(IMAGE, f))
                                                 for f in SEVERITIES["resize"]]
    assert all(a > 2 * b for a, b in zip(energies, energies[1:])), energies
    # Size is restored, and a factor-1 round trip is (nearly) lossless.
    assert downscale_upscale(IMAGE, 0.5).shape == IMAGE.shape
    assert np.abs(downscale_upscale(IMAGE, 1.0).astype(int) - IMAGE).max() <= 1


def test_chain_levels_degrade_progressively():
    errors = [np.mean((Perturbation("chain", level)(IMAGE, "a.png").astype(float) - IMAGE) ** 2)
              for level in SEVERITIES["chain"]]
    assert errors == sorted(errors) and errors[0] > 0


def test_randomness_depends_on_seed_frame_path_and_perturbation_only():
    noise = Perturbation("noise", 10, seed=7)
    frames = [f"DemoFF/real/{i:03d}.png" for i in range(4)]
    forward = {key: noise(IMAGE, key) for key in frames}
    backward = {key: noise(IMAGE, key) for key in reversed(frames)}
    assert all(np.array_equal(forward[key], backward[key]) for key in frames)
    assert not np.array_equal(forward[frames[0]], forward[frames[1]])
    assert not np.array_equal(forward[frames[0]], Perturbation("noise", 10, seed=8)(IMAGE, frames[0]))
    # Stable across processes: a hash, not Python's salted hash().
    assert derive_seed(7, "noise=10", frames[0]) == derive_seed(7, "noise=10", frames[0])
    assert derive_seed(7, "noise=10", frames[0]) != derive_seed(7, "noise=20", frames[0])


def test_parse_perturbations_and_errors():
    assert [p.name for p in parse_perturbations(["jpeg=90,50", "blur"])] == [
        "jpeg=90", "jpeg=50", "blur=1", "blur=2", "blur=3"]
    assert [p.slug for p in parse_perturbations(["resize=0.5"])] == ["resize_0.5"]
    with pytest.raises(ValueError, match="unknown kind 'sharpen'"):
        parse_perturbations(["sharpen"])
    with pytest.raises(ValueError, match="numbers separated by commas"):
        parse_perturbations(["jpeg=high"])
    with pytest.raises(ValueError, match="quality must be in"):
        Perturbation("jpeg", 0)
    with pytest.raises(ValueError, match="factor must be in"):
        Perturbation("resize", 2)
    with pytest.raises(ValueError, match="RGB uint8"):
        apply("blur", IMAGE.astype(np.float32), 1)


def test_perturbed_storage_degrades_frames_only(tmp_path):
    cv2.imwrite(str(tmp_path / "000.png"), cv2.cvtColor(IMAGE, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), IMAGE[:, :, 0])
    clean = RgbStorage(tmp_path)
    blur = Perturbation("blur", 2)
    storage = PerturbedStorage(clean, blur)
    assert np.array_equal(storage.read_image("000.png"), blur(IMAGE, "000.png"))
    assert np.array_equal(storage.read_mask("mask.png"), clean.read_mask("mask.png"))
    assert storage.kind == "rgb+blur=2"
