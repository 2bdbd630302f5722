"""What happens during one synthetic source video: head motion, blinks, speech, light.

A clip is a set of smooth functions of the original frame index, so any subset
of frames (the 16 that preprocessing would sample) can be rendered on its own
and consecutive samples still move coherently.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from preprocessing.demo.render import CENTER_X, Expression, FrameState

SOURCE_FRAMES = 80  # length of the imaginary source video
SAMPLED_FRAMES = 16  # frames per video written to disk, evenly spaced
FRAME_INDICES: Tuple[int, ...] = tuple(range(0, SOURCE_FRAMES, SOURCE_FRAMES // SAMPLED_FRAMES))


@dataclass(frozen=True)
class _Wave:
    """amplitude * sin(2 pi t / period + phase)."""

    amplitude: float
    period: float
    phase: float

    def __call__(self, t: float) -> float:
        return self.amplitude * float(np.sin(2 * np.pi * t / self.period + self.phase))


def _wave(rng: np.random.Generator, amplitude: Tuple[float, float], period=(30.0, 120.0)) -> _Wave:
    return _Wave(rng.uniform(*amplitude) * rng.choice([-1.0, 1.0]), rng.uniform(*period),
                 rng.uniform(0, 2 * np.pi))


@dataclass(frozen=True)
class ClipScript:
    shift_x: _Wave
    shift_y: _Wave
    roll_deg: _Wave
    zoom: _Wave
    base_roll_deg: float
    base_zoom: float
    blink_times: Tuple[float, ...]
    speech: _Wave
    speech_level: float
    smile: _Wave
    smile_level: float
    light_azimuth: _Wave
    light_base_azimuth: float
    light_elevation: float
    exposure: _Wave
    white_balance: np.ndarray  # (3,) fixed per clip

    def state(self, t: float) -> FrameState:
        angle = self.base_roll_deg + self.roll_deg(t)
        scale = self.base_zoom * (1.0 + self.zoom(t))
        # Rotate and scale about the face centre, then shift: the residual motion
        # of a face that an aligner has already roughly centred.
        pose = cv2.getRotationMatrix2D((CENTER_X, 140.0), angle, scale)
        pose[:, 2] += (self.shift_x(t), self.shift_y(t))
        blink = max([float(np.exp(-((t - b) / 1.8) ** 2)) for b in self.blink_times] + [0.0])
        # Speech: the jaw opens on positive half-waves plus a faster syllable rhythm.
        syllables = 0.5 + 0.5 * np.sin(2 * np.pi * t / 7.0 + self.speech.phase * 3)
        mouth = self.speech_level * max(0.0, self.speech(t) / max(abs(self.speech.amplitude), 1e-6)) * syllables
        expression = Expression(blink=blink, mouth_open=float(mouth),
                                smile=self.smile_level + self.smile(t))
        azimuth = self.light_base_azimuth + self.light_azimuth(t)
        light = np.array([np.sin(azimuth) * np.cos(self.light_elevation),
                          -np.sin(self.light_elevation),
                          np.cos(azimuth) * np.cos(self.light_elevation)])
        gain = self.white_balance * (1.0 + self.exposure(t))
        return FrameState(pose=pose, expression=expression, light=light / np.linalg.norm(light),
                          gain_bgr=gain)


def sample_clip(rng: np.random.Generator, motion: float = 1.0) -> ClipScript:
    """A random clip; ``motion`` scales head motion and speech (1: the default talking head,
    lower: a steadier interview shot). It scales amplitudes after drawing them, so the random
    stream, and every clip made with ``motion=1``, stays the same."""
    n_blinks = int(rng.integers(1, 4))
    script = ClipScript(
        shift_x=_wave(rng, (1.5, 6.0)),
        shift_y=_wave(rng, (1.0, 4.0)),
        roll_deg=_wave(rng, (1.0, 6.0)),
        zoom=_wave(rng, (0.01, 0.04)),
        base_roll_deg=rng.uniform(-4, 4),
        base_zoom=rng.uniform(0.94, 1.05),
        blink_times=tuple(rng.uniform(0, SOURCE_FRAMES, n_blinks)),
        speech=_wave(rng, (1.0, 1.0), (12.0, 40.0)),
        speech_level=rng.uniform(0.0, 0.9),
        smile=_wave(rng, (0.0, 0.3)),
        smile_level=rng.uniform(-0.2, 0.6),
        light_azimuth=_wave(rng, (0.05, 0.35)),
        light_base_azimuth=rng.uniform(-0.7, 0.7),
        light_elevation=rng.uniform(0.0, 0.6),
        exposure=_wave(rng, (0.02, 0.08)),
        white_balance=1.0 + rng.normal(0, 0.04, 3),
    )
    if motion == 1.0:
        return script
    return dataclasses.replace(
        script, shift_x=_scaled(script.shift_x, motion), shift_y=_scaled(script.shift_y, motion),
        roll_deg=_scaled(script.roll_deg, motion), zoom=_scaled(script.zoom, motion),
        speech_level=script.speech_level * motion)


def _scaled(wave: _Wave, factor: float) -> _Wave:
    return _Wave(wave.amplitude * factor, wave.period, wave.phase)
