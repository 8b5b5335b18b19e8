"""Shared test helpers: where the real data lives, and small writers for fixture files."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    """The benchmark data: ``$SEQVAD_DATA`` or ``../shared/data`` beside the repository."""
    return Path(os.environ.get("SEQVAD_DATA", REPO.parent / "shared" / "data"))


def require_data(*parts: str) -> Path:
    path = shared_data().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (set SEQVAD_DATA to the data folder)")
    return path


def write_frames(folder: Path, frames: np.ndarray, ext: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}{ext}"), frame)
    return folder


def write_avi(path: Path, frames: np.ndarray, fps: float = 25.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def random_frames(n: int, h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def pytest_configure(config):
    # Tiny models on a 2-core machine: one torch thread per test process is several times
    # faster than two threads fighting each other (and other processes).
    import torch

    torch.set_num_threads(1)
