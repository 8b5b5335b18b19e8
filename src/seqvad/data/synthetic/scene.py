"""A scene's videos: frames rendered on demand, labels, masks and boxes; writing a scene to disk."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from seqvad.atomic import replacing
from seqvad.config import config_hash
from seqvad.data.synthetic.drawing import Actor, NoiseBank, Pen, actor_box, draw_actor, make_background, visible_frames
from seqvad.data.synthetic.planner import Planner
from seqvad.data.synthetic.settings import SceneConfig, as_scene_config
from seqvad.data.videos import FrameReader, Video
from seqvad.errors import ConfigError

class SyntheticReader(FrameReader):
    """Renders frame ``i`` of one planned video on demand, caching the last few frames."""

    CACHE_FRAMES = 16

    def __init__(self, name: str, config: SceneConfig, background: np.ndarray, actors: list[Actor],
                 gain: np.ndarray, noise: NoiseBank, noise_picks: np.ndarray):
        self.path = f"synthetic:{name}"
        # the scene's settings, seed included: a cube cache made from another draw of the scene
        # is stale even though its video names and lengths are the same
        self.fingerprint = config_hash(asdict(config))
        self.config = config
        self.background = background
        self.actors = sorted(actors, key=lambda a: a.t0)
        self.gain = gain
        self.noise = noise
        self.noise_picks = noise_picks
        self._firsts = np.array([a.first for a in self.actors], dtype=np.int64)
        self._lasts = np.array([a.last for a in self.actors], dtype=np.int64)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.gain)

    @property
    def fps(self) -> float | None:
        return self.config.fps

    def actors_at(self, index: int, abnormal_only: bool = False) -> list[Actor]:
        on = np.nonzero((self._firsts <= index) & (self._lasts >= index))[0]
        actors = [self.actors[k] for k in on if self.actors[k].abnormal or not abnormal_only]
        return sorted(actors, key=lambda a: a.feet(index)[1])  # far objects first: near ones occlude

    def _read(self, index: int) -> np.ndarray:
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        frame = self.render(index)
        frame.flags.writeable = False  # cached: callers must not modify it in place
        self._cache[index] = frame
        if len(self._cache) > self.CACHE_FRAMES:
            self._cache.popitem(last=False)
        return frame

    def render(self, index: int) -> np.ndarray:
        canvas = self.background.copy()
        pen = Pen(canvas)
        for actor in self.actors_at(index):
            draw_actor(pen, actor, index, self.config.height)
        if self.config.blur:
            canvas = cv2.GaussianBlur(canvas, (3, 3), 0.6)
        lit = cv2.convertScaleAbs(canvas, alpha=float(self.gain[index]))  # global brightness drift
        return cv2.add(lit, self.noise.sample(*self.noise_picks[index]), dtype=cv2.CV_8U)

    def mask(self, index: int) -> np.ndarray:
        """Pixels covered by abnormal objects (whole silhouettes, occlusion ignored)."""
        canvas = np.zeros(self.background.shape[:2], np.uint8)
        pen = Pen(canvas, mask=True)
        for actor in self.actors_at(index, abnormal_only=True):
            draw_actor(pen, actor, index, self.config.height)
        return canvas > 0

    def boxes(self, index: int) -> np.ndarray:
        """``(k, 5)`` float32 rows ``x1, y1, x2, y2, abnormal`` of the objects on screen."""
        H, W = self.config.height, self.config.width
        rows = []
        for actor in self.actors_at(index):
            x1, y1, x2, y2 = actor_box(actor, index, H)
            x1, y1, x2, y2 = max(0.0, x1), max(0.0, y1), min(W - 1.0, x2), min(H - 1.0, y2)
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                rows.append((x1, y1, x2, y2, float(actor.abnormal)))
        return np.array(rows, np.float32).reshape(-1, 5)

    def __getstate__(self):  # picklable for worker processes: drop the cache
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state


@dataclass
class AnomalyEvent:
    """One anomaly of a test video, for reports and tests (labels and masks are the truth)."""

    video: str
    kind: str
    first_frame: int  # first and last frame where the object is visible
    last_frame: int


class SyntheticScene:
    """A deterministic scene: train videos (normal only) and test videos (labelled)."""

    TRAIN, TEST = 0, 1  # random-stream keys: each video has its own, so counts do not interact

    def __init__(self, config: SceneConfig | None = None):
        self.config = config or SceneConfig()
        self.config.validate()
        c = self.config
        self.background = make_background(c.height, c.width, np.random.default_rng((c.seed, 2, 0)))
        self.noise = NoiseBank(c.height, c.width, c.noise_sigma, np.random.default_rng((c.seed, 2, 1)))
        self.events: list[AnomalyEvent] = []  # filled while the test videos are planned
        self._train = [self._make_video(self.TRAIN, i, []) for i in range(c.train_videos)]
        self._test = [self._make_video(self.TEST, i, kinds) for i, kinds in enumerate(self._event_kinds())]

    def _event_kinds(self) -> list[list[str]]:
        """Kinds of each test video's events, dealt round-robin from a shuffled deck, so that
        every kind appears as soon as there are as many events as kinds."""
        c = self.config
        rng = np.random.default_rng((c.seed, 3, 0))
        counts = rng.integers(c.events_per_video[0], c.events_per_video[1] + 1, size=c.test_videos)
        deck = list(rng.permutation(list(c.anomaly_kinds)))
        order = [str(deck[k % len(deck)]) for k in range(int(counts.sum()))]
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return [order[bounds[i]:bounds[i + 1]] for i in range(c.test_videos)]

    def _make_video(self, split: int, index: int, kinds: list[str]) -> Video:
        c = self.config
        n = c.frames_per_video
        rng = np.random.default_rng((c.seed, split, index))
        planner = Planner(c, rng)
        actors = planner.pedestrians(n)
        anomalies = planner.events(kinds, n) if split == self.TEST else []
        name = f"{'train' if split == self.TRAIN else 'test'}_{index + 1:02d}"
        reader = SyntheticReader(name, c, self.background, actors + anomalies,
                                 self._lighting(rng, n), self.noise, self.noise.picks(rng, n))
        if split == self.TRAIN:
            return Video(name, reader, labels=np.zeros(n, np.uint8), fps=c.fps)
        # a frame is abnormal iff some abnormal object has a pixel in it, drawn as the masks are
        labels = np.zeros(n, bool)
        for actor in anomalies:
            visible = visible_frames(actor, n, c.height, c.width)
            labels |= visible
            if visible.any():
                shown = np.nonzero(visible)[0]
                self.events.append(AnomalyEvent(name, actor.event, int(shown[0]), int(shown[-1])))
        return Video(name, reader, labels=labels.astype(np.uint8), mask_fn=reader.mask, fps=c.fps)

    def _lighting(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        """A slow brightness change: two low-frequency sines with random phases."""
        t = np.arange(frames)
        period = rng.uniform(250, 500)
        wave = 0.7 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        wave += 0.3 * np.sin(2 * np.pi * t / (0.37 * period) + rng.uniform(0, 2 * np.pi))
        return 1.0 + self.config.drift * wave

    def train_videos(self) -> list[Video]:
        return list(self._train)

    def test_videos(self) -> list[Video]:
        return list(self._test)

    def object_boxes(self, video: Video) -> list[np.ndarray]:
        """Ground-truth boxes per frame (``(k, 5)``: x1, y1, x2, y2, abnormal) of a scene video."""
        reader = video.reader
        if not isinstance(reader, SyntheticReader):
            raise ConfigError(f"{video.name}: not a synthetic scene video")
        return [reader.boxes(i) for i in range(len(reader))]


def make_scene(config: SceneConfig | str = "demo") -> tuple[list[Video], list[Video]]:
    """``(train_videos, test_videos)`` of a scene given by its config or preset name."""
    scene = SyntheticScene(as_scene_config(config))
    return scene.train_videos(), scene.test_videos()


def write_scene(directory: str | Path, config: SceneConfig | str = "demo",
                progress: Callable[[str], None] | None = None) -> Path:
    """Write a scene as a ``folder`` dataset: ``training/<video>/NNN.png``,
    ``testing/<video>/NNN.png`` and ``labels/<video>.npy`` (uint8 0/1 per test frame)."""
    root = Path(directory)
    train, test = make_scene(config)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for split, videos in (("training", train), ("testing", test)):
        for video in videos:
            folder = root / split / video.name
            folder.mkdir(parents=True, exist_ok=True)
            digits = max(3, len(str(len(video) - 1)))
            for i in range(len(video)):
                with replacing(folder / f"{i:0{digits}d}.png") as tmp:
                    tmp.write_bytes(cv2.imencode(".png", video.frame(i))[1].tobytes())
            if split == "testing":
                with replacing(root / "labels" / f"{video.name}.npy") as tmp, open(tmp, "wb") as handle:
                    np.save(handle, video.labels)
            if progress is not None:
                progress(f"{split}/{video.name}: {len(video)} frames")
    return root
