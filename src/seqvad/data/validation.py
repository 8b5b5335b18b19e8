"""The validation split: held-out training videos with injected, labelled anomalies.

Model selection must never look at test labels (DESIGN.md, "Honest model selection"). Training
video holds only normal activity, so anomalies are made: a few training videos named in the
config (``validation.videos``) are held out of training, and each gets one or more spans of
known synthetic anomalies, labelled frame by frame:

* ``fast``: the scene plays ``speed`` times too fast over the span (frames skipped), so every
  object moves like a cyclist or a skater among walkers;
* ``glide``: a real person of the same video, cut out by background subtraction, glides
  through the scene at ``object_speed`` pixels per frame without moving a limb (like the
  skateboarders of Ped2: a normal appearance in an abnormal motion; only that object is abnormal);
* ``foreign``: an object never seen in training (a cyclist or a person pushing a cart, drawn
  by the synthetic scene's painter at the local person size) crosses part of the scene at
  ``object_speed`` pixels per frame;
* ``rush``: a real walking person of the scene, followed through the span and cut out against
  the empty scene, moves ``rush_speed`` times too fast (limbs and stride both) along its own
  path, then stands frozen where its own time catches up, while the rest of the scene plays on
  at normal speed (like Ped2's cyclists and runners among walkers: one real person out of step;
  only that object is abnormal).  It is the scene's own person at the scene's own time, so the
  span starts and ends without a jump, and nothing is pasted that the scene did not hold;
* ``reverse``: the scene plays backwards over the span (continuous at both ends);
* ``freeze``: the scene stops (one frame repeated).

The defaults (all three kinds, objects at 1.25 px/frame, the scene at 1.25x, three draws of each
held-out video) were calibrated on the validation split itself with a baseline Ped2 model, so
that it can rank variants: a first version (``fast`` at 3x, the painted object at 4 px/frame)
and a second (``glide`` at 3 px/frame, ``fast`` at 2x) gave validation AUC 0.999 for every
variant. Ped2's walkers move about 1 px/frame; a glider at 1.5 px/frame is found every time,
one at 1.0 almost never. Middle-frame prediction from both sides is symmetric in time and a frozen
frame is trivially predictable, so ``reverse`` and ``freeze`` are invisible to the paper's
score by construction; they stay available for scores that could see them. Everything is a
pure function of (the source video, its position in the list, ``validation.seed``), so the
split is identical on every machine.

An injected video keeps, for every output frame, the index of its source frame
(``source_index``) and the box of any pasted object, so precomputed boxes of the source video
carry over (:func:`injected_boxes`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from seqvad.data.videos import FrameReader, Video
from seqvad.errors import ConfigError
from seqvad.objects.detectors.boxes import box_iou

KINDS = ("fast", "glide", "foreign", "rush", "reverse", "freeze")
VALIDATION_KEYS = ("videos", "kinds", "seed", "span", "speed", "object_speed", "rush_speed", "gap", "copies")
PASTED = ("glide", "foreign", "rush")  # kinds that paste one object: at most one per video


@dataclass(frozen=True)
class Injection:
    """One labelled anomaly: output frames ``start`` .. ``end - 1`` are abnormal."""

    kind: str
    start: int
    end: int


@dataclass
class Plan:
    """How an injected video is made from its source: frame map, spans, foreign object."""

    source_index: np.ndarray  # output frame -> source frame
    injections: list[Injection]
    foreign: dict[str, Any] | None = None  # where and how the pasted object moves, if any
    sprite: tuple[np.ndarray, np.ndarray] | None = None  # 'glide': the person's pixels and mask
    tube: list[tuple[int, int, np.ndarray, np.ndarray]] | None = None  # 'rush': (x, y, pixels, mask) per frame
    background: np.ndarray | None = None  # 'rush': the empty scene, painted where the person was

    def labels(self) -> np.ndarray:
        labels = np.zeros(len(self.source_index), np.uint8)
        for injection in self.injections:
            labels[injection.start:injection.end] = 1
        return labels


@dataclass
class Settings:
    """``validation`` config section, checked (defaults: ``config.DEFAULTS["validation"]``)."""

    videos: list[str]  # the held-out training videos
    kinds: list[str]  # injected kinds, each video starting with the next one in turn
    seed: int
    span: int  # abnormal output frames per injection
    speed: float  # 'fast': source frames per output frame
    object_speed: float  # 'glide', 'foreign': pixels per frame (Ped2 walkers: about 1)
    rush_speed: float  # 'rush': the person's frames per output frame
    gap: int  # normal frames before the first span and between spans (at least)
    copies: int  # injected versions of each held-out video (other draws): more anomalies, less noise

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> "Settings":
        section = dict(section or {})
        unknown = set(section) - set(VALIDATION_KEYS)
        if unknown:
            raise ConfigError(f"validation: unknown keys {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(VALIDATION_KEYS)})")
        from seqvad.config import DEFAULTS

        settings = cls(**{**DEFAULTS["validation"], **section})
        settings.videos = [str(v) for v in settings.videos or []]
        settings.kinds = list(settings.kinds or [])
        bad = [k for k in settings.kinds if k not in KINDS]
        if bad or not settings.kinds:
            raise ConfigError(f"validation.kinds: {bad or 'empty'}; choose from {', '.join(KINDS)}")
        if not (int(settings.span) >= 4 and int(settings.gap) >= 8):
            raise ConfigError("validation: span must be >= 4 and gap >= 8 frames")
        if not (isinstance(settings.copies, int) and settings.copies >= 1):
            raise ConfigError(f"validation.copies: expected a whole number >= 1, got {settings.copies!r}")
        if not (settings.speed > 1 and settings.rush_speed > 1 and settings.object_speed > 0):
            raise ConfigError("validation: speed and rush_speed must be > 1 and object_speed > 0")
        return settings


def split_held_out(videos: Sequence[Video], settings: Settings) -> tuple[list[Video], list[Video]]:
    """(videos kept for training, held-out videos), by ``settings.videos`` names."""
    names = {v.name for v in videos}
    missing = [n for n in settings.videos if n not in names]
    if missing:
        raise ConfigError(f"validation.videos: {', '.join(missing)} not among the training videos "
                          f"({', '.join(sorted(names)[:8])}{'...' if len(names) > 8 else ''})")
    if not settings.videos:
        raise ConfigError("validation.videos: name the training videos to hold out, e.g. [\"04\", \"08\"]")
    if len(settings.videos) >= len(videos):
        raise ConfigError("validation.videos: at least one training video must stay for training")
    held = set(settings.videos)
    return [v for v in videos if v.name not in held], [v for v in videos if v.name in held]


def plan_video(frames: int, kinds: Sequence[str], settings: Settings, rng: np.random.Generator,
               height: int, width: int, video: Video | None = None) -> Plan:
    """Frame map and labelled spans for a source of ``frames`` frames; spans that do not fit are
    left out (at least one always fits a video of >= 2 * gap + span * speed frames)."""
    source: list[int] = []
    injections: list[Injection] = []
    foreign = sprite = tube = background = None
    position = 0  # next source frame

    def normal(count: int) -> None:  # plays on, never past the source's last frame
        nonlocal position
        for _ in range(min(count, frames - position)):
            source.append(position)
            position += 1

    normal(settings.gap + int(rng.integers(0, settings.gap)))
    for kind in kinds:
        span = settings.span
        need = {"fast": int(np.ceil(span * settings.speed)), "reverse": 0, "freeze": 1}.get(kind, span)
        if position + need + settings.gap > frames or (kind == "reverse" and position < span + 1):
            continue
        if kind in PASTED and foreign is not None:
            continue  # one pasted object per video
        if kind == "glide":
            sprite = person_sprite(video, rng) if video is not None else None
            if sprite is None:
                continue
        if kind == "rush":  # the first person who can be followed from one of the next frames
            if video is None:
                continue
            background = _background(video)[1] if background is None else background
            for shift in range(settings.gap):
                if position + shift + span + settings.gap > frames:
                    break
                tube = person_tube(video, rng, position + shift, span, background)
                if tube is not None:
                    normal(shift)
                    break
            if tube is None:
                continue
        start = len(source)
        if kind == "fast":
            for j in range(span):
                source.append(position + int(round(j * settings.speed)))
            position += int(round(span * settings.speed))
        elif kind == "reverse":  # back from the last shown frame, then forward again: no jumps
            last = position - 1
            source.extend(last - 1 - j for j in range(span))
            position = last - span
        elif kind == "freeze":
            source.extend([position] * span)
            position += 1
        elif kind == "glide":
            foreign = glide_path(rng, start, span, settings.object_speed, height, width, sprite)
            normal(span)
        elif kind == "rush":
            foreign = {"kind": "rush", "first": start, "last": start + span - 1, "step": float(settings.rush_speed),
                       "source_first": position}
            normal(span)
        else:  # foreign
            foreign = foreign_object(rng, start, span, settings.object_speed, height, width)
            normal(span)
        injections.append(Injection(kind, start, start + span))
        normal(settings.gap + int(rng.integers(0, settings.gap)))
    normal(max(0, frames - position))
    return Plan(np.asarray(source, np.int64), injections, foreign, sprite, tube, background)


def _background(video: Video, samples: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """(frame indices sampled evenly, their median: the video's empty scene)."""
    picks = np.linspace(0, len(video) - 1, num=min(samples, len(video))).astype(int)
    frames = np.stack([video.frame(int(i)) for i in picks])
    return picks, np.median(frames, axis=0).astype(np.uint8)


def _blobs(frame: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moving blobs of ``frame`` against ``background`` (OpenCV connected components):
    ``(labels image, stats rows x/y/w/h/area, centroids)``, background row 0 included."""
    import cv2

    kernel = np.ones((3, 3), np.uint8)
    difference = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    foreground = cv2.morphologyEx((difference > 25).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    foreground = cv2.dilate(foreground, kernel)
    _, labels, stats, centroids = cv2.connectedComponentsWithStats(foreground)
    return labels, stats, centroids


def _inside(stat: np.ndarray, height: int, width: int) -> bool:
    x, y, w, h = (int(v) for v in stat[:4])
    return x > 0 and y > 0 and x + w < width and y + h < height


def _person_like(stat: np.ndarray, height: int, width: int) -> bool:
    """Person-sized (0.15-2 % of the frame), upright, not cut by the frame's border."""
    area, w, h = int(stat[4]), int(stat[2]), int(stat[3])
    return 0.0015 * height * width <= area <= 0.02 * height * width and h >= 1.3 * w and _inside(stat, height, width)


def _cut(frame: np.ndarray, labels: np.ndarray, stat: np.ndarray, k: int) -> tuple[int, int, np.ndarray, np.ndarray]:
    x, y, w, h = (int(v) for v in stat[:4])
    return x, y, frame[y:y + h, x:x + w].copy(), labels[y:y + h, x:x + w] == k


def person_sprite(video: Video, rng: np.random.Generator, samples: int = 25) -> tuple[np.ndarray, np.ndarray] | None:
    """A person-sized moving blob of ``video``, cut out against its median background:
    ``(pixels (h, w, C), mask (h, w) bool)``, or None when no frame has one."""
    picks, background = _background(video, samples)
    height, width = background.shape[:2]
    for i in rng.permutation(len(picks)):
        frame = video.frame(int(picks[i]))
        labels, stats, _ = _blobs(frame, background)
        candidates = [k for k in range(1, len(stats)) if _person_like(stats[k], height, width)]
        if candidates:
            k = int(rng.choice(candidates))
            return _cut(frame, labels, stats[k], k)[2:]
    return None


def person_tube(video: Video, rng: np.random.Generator, first: int, length: int,
                background: np.ndarray) -> list[tuple[int, int, np.ndarray, np.ndarray]] | None:
    """A real person of ``video`` seen in frame ``first``, followed over ``length`` frames and cut
    out against the ``background``: ``[(x, y, pixels, mask) per frame]``, or None when nobody in
    that frame can be followed that long.

    Following is nearest-centroid association of moving blobs from frame to frame, accepted only
    while the blob keeps its size (0.6-1.6x) and stays inside the frame; a person who merges with
    a passer-by, leaves, or walks under 0.5 px/frame is dropped and the next candidate is tried.
    Written here rather than with an OpenCV tracker: the blobs are already there, and a tracker's
    box would carry background."""
    if first + length > len(video):
        return None
    height, width = background.shape[:2]
    frames = [video.frame(i) for i in range(first, first + length)]
    found = [_blobs(frame, background) for frame in frames]
    labels, stats, centroids = found[0]
    candidates = [k for k in range(1, len(stats)) if _person_like(stats[k], height, width)]
    for k in rng.permutation(candidates).tolist() if candidates else []:
        tube = [_cut(frames[0], labels, stats[k], k)]
        start = centre = centroids[k]
        area, reach = stats[k, 4], max(6.0, 0.5 * stats[k, 3])
        for frame, (labels_t, stats_t, centroids_t) in zip(frames[1:], found[1:]):
            near = [j for j in range(1, len(stats_t)) if 0.6 * area <= stats_t[j, 4] <= 1.6 * area
                    and _inside(stats_t[j], height, width) and np.hypot(*(centroids_t[j] - centre)) <= reach]
            if not near:
                break
            j = min(near, key=lambda j: np.hypot(*(centroids_t[j] - centre)))
            tube.append(_cut(frame, labels_t, stats_t[j], j))
            centre, area = centroids_t[j], stats_t[j, 4]
        # a person standing or dawdling (under 0.5 px/frame) stays normal even replayed too fast
        if len(tube) == length and np.hypot(*(centre - start)) >= 0.5 * (length - 1):
            return tube
    return None


def rush_step(j: int, span: int, speed: float) -> int:
    """'rush': which of the person's own frames output frame ``j`` of the span shows: ``speed``
    times too fast until it reaches where it would be at the span's end, then it stands frozen
    there until its own time catches up, so it leaves the span in step with the scene (no jump)."""
    return max(j, min(int(round(speed * j)), span - 1))


def glide_path(rng: np.random.Generator, start: int, span: int, speed: float, height: int, width: int,
               sprite: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Where the person sprite glides: horizontally, fully inside the frame, in its lower 2/3."""
    h, w = sprite[1].shape
    travel = speed * (span - 1)
    direction = 1 if rng.random() < 0.5 else -1
    x0 = float(rng.uniform(0, max(1.0, width - w - travel)))
    if direction < 0:
        x0 += travel
    y0 = float(rng.uniform(height / 3, max(height / 3 + 1, height - h - 1)))
    return {"kind": "glide", "x0": x0, "y": y0, "vx": direction * speed, "t0": start, "first": start,
            "last": start + span - 1}


def foreign_object(rng: np.random.Generator, start: int, span: int, speed: float, height: int,
                   width: int) -> dict[str, Any]:
    """A cyclist or a cart pusher crossing horizontally, fully inside the frame for the span."""
    kind = str(rng.choice(["bike", "cart"]))
    direction = 1 if rng.random() < 0.5 else -1
    travel = speed * (span - 1)
    margin = 0.12 * width
    x0 = float(rng.uniform(margin, max(margin + 1, width - margin - travel)))
    if direction < 0:
        x0 = width - x0
    grey = lambda low, high: (float(rng.uniform(low, high)),) * 3  # noqa: E731  (grey footage: no colour cue)
    colors = {"wheel": grey(10, 50), "frame": grey(150, 230), "legs": grey(25, 110), "shirt": grey(40, 220),
              "skin": grey(120, 190), "hair": grey(15, 60), "box": grey(150, 230), "slat": grey(20, 70),
              "pack": grey(20, 70)}
    return {"kind": kind, "x0": x0, "y": float(rng.uniform(0.5, 0.95) * height), "vx": direction * speed,
            "t0": start, "first": start, "last": start + span - 1, "colors": colors}


def _actor(spec: Mapping[str, Any]):
    from seqvad.data.synthetic import Actor

    # size 0.7: the painter's perspective makes people ~1.4x taller than Ped2's at the same row
    return Actor(kind=spec["kind"], origin=(spec["x0"], spec["y"]), velocity=(spec["vx"], 0.0), t0=spec["t0"],
                 first=spec["first"], last=spec["last"], size=0.7, gait=0.5, phase=0.0, view="side",
                 colors=spec["colors"], abnormal=True, event="foreign")


class InjectedReader(FrameReader):
    """Frames of a source reader through a :class:`Plan` (frame map plus a painted object)."""

    def __init__(self, source: FrameReader, plan: Plan, name: str):
        self.source = source
        self.plan = plan
        self.path = f"{source.path} [validation: {', '.join(i.kind for i in plan.injections)}]"
        digest = hashlib.blake2b(digest_size=12)
        digest.update(str(getattr(source, "fingerprint", None) or source.path).encode())
        digest.update(plan.source_index.tobytes())
        digest.update(json.dumps([asdict(i) for i in plan.injections]).encode())
        digest.update(json.dumps(plan.foreign, sort_keys=True).encode())
        if plan.sprite is not None:
            digest.update(plan.sprite[0].tobytes() + plan.sprite[1].tobytes())
        for x, y, pixels, mask in plan.tube or []:
            digest.update(np.array([x, y], np.int64).tobytes() + pixels.tobytes() + mask.tobytes())
        if plan.background is not None:
            digest.update(plan.background.tobytes())
        self.fingerprint = f"validation-{name}-{digest.hexdigest()}"

    def __len__(self) -> int:
        return len(self.plan.source_index)

    @property
    def fps(self) -> float | None:
        return self.source.fps

    def _read(self, index: int) -> np.ndarray:
        frame = self.source.read(int(self.plan.source_index[index]))
        spec = self.plan.foreign
        if spec is None or not spec["first"] <= index <= spec["last"]:
            return frame
        if spec["kind"] == "glide":
            x, y = self._sprite_origin(index)
            return _paste(frame, x, y, *self.plan.sprite)
        if spec["kind"] == "rush":
            j, shown = self._tube_steps(index)
            if shown == j:
                return frame  # in step with the scene: the person is where it really is
            x, y, _, mask = self.plan.tube[j]  # the person leaves its real place ...
            frame = _paste(frame, x, y, self.plan.background[y:y + mask.shape[0], x:x + mask.shape[1]], mask)
            return _paste(frame, *self.plan.tube[shown])  # ... for the one it rushed to
        from seqvad.data.synthetic.drawing import Pen, draw_actor

        canvas = np.ascontiguousarray(np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame).copy()
        draw_actor(Pen(canvas), _actor(spec), index, canvas.shape[0])
        return canvas[:, :, :1].copy() if frame.shape[2] == 1 else canvas

    def _sprite_origin(self, index: int) -> tuple[int, int]:
        spec = self.plan.foreign
        return int(round(spec["x0"] + spec["vx"] * (index - spec["t0"]))), int(round(spec["y"]))

    def _tube_steps(self, index: int) -> tuple[int, int]:
        """'rush': (the person's own frame at output ``index``, the frame shown instead)."""
        spec = self.plan.foreign
        j = index - spec["first"]
        return j, rush_step(j, len(self.plan.tube), spec["step"])

    def rushed(self, index: int) -> tuple[int, int] | None:
        """'rush': (source frame of the person's real place, source frame of the place shown) at
        output ``index`` while they differ; None otherwise."""
        spec = self.plan.foreign
        if spec is None or spec["kind"] != "rush" or not spec["first"] <= index <= spec["last"]:
            return None
        j, shown = self._tube_steps(index)
        return None if shown == j else (spec["source_first"] + j, spec["source_first"] + shown)

    def foreign_box(self, index: int) -> np.ndarray | None:
        """``(x1, y1, x2, y2)`` of the pasted object in output frame ``index``, or None."""
        spec = self.plan.foreign
        if spec is None or not spec["first"] <= index <= spec["last"]:
            return None
        if spec["kind"] == "glide":
            x, y = self._sprite_origin(index)
            h, w = self.plan.sprite[1].shape
            return np.array([x, y, x + w - 1, y + h - 1], np.float32)
        if spec["kind"] == "rush":
            if self.rushed(index) is None:
                return None
            x, y, _, mask = self.plan.tube[self._tube_steps(index)[1]]
            return _box(x, y, mask)
        from seqvad.data.synthetic import actor_box

        height, width = self.source.read(0).shape[:2]
        x1, y1, x2, y2 = actor_box(_actor(spec), index, height)
        return np.array([max(0.0, x1), max(0.0, y1), min(width - 1.0, x2), min(height - 1.0, y2)], np.float32)


def _paste(frame: np.ndarray, x: int, y: int, pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``frame`` with the masked ``pixels`` pasted at top-left (x, y), clipped at the frame's edge."""
    h, w = mask.shape
    out = frame.copy()
    region = out[y:y + h, x:x + w]
    keep = mask[: region.shape[0], : region.shape[1]]
    region[keep] = pixels[: region.shape[0], : region.shape[1]][keep]
    return out


def make_validation(held_out: Sequence[Video], settings: Settings) -> list[Video]:
    """The injected, labelled validation videos: ``settings.copies`` draws of each held-out
    video, named ``<source>-val<k>``."""
    out = []
    for copy in range(settings.copies):
        for number, video in enumerate(held_out):
            rng = np.random.default_rng([settings.seed, copy, number])
            rotation = (number + copy) % len(settings.kinds)  # each kind leads in turn
            kinds = settings.kinds[rotation:] + settings.kinds[:rotation]
            height, width = video.frame(0).shape[:2]
            plan = plan_video(len(video), kinds, settings, rng, height, width, video)
            if not plan.injections:
                raise ConfigError(f"validation: nothing of kinds {', '.join(kinds)} fits video {video.name} "
                                  f"({len(video)} frames): too short for a span of {settings.span} frames, "
                                  f"or no moving person to cut out; lower validation.span, add kinds or "
                                  f"hold out another video")
            name = f"{video.name}-val{copy}"
            out.append(Video(name, InjectedReader(video.reader, plan, name), labels=plan.labels(), fps=video.fps))
    return out


def injected_boxes(video: Video, source_boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per output frame: the source frame's boxes (k, 4..6) plus the painted object's box.

    A 'rush' person leaves its real place for one its own future frame shows: its box there is
    dropped, and the box that frame's detector gave it (best overlap with the cut-out, IoU >= 0.3)
    added, so that its crops are framed as the detector frames people (a cut-out's tight box is not)."""
    reader = video.reader
    if not isinstance(reader, InjectedReader):
        raise ConfigError(f"{video.name}: not a validation video")
    out = []
    for index, source in enumerate(reader.plan.source_index):
        boxes = np.asarray(source_boxes[int(source)], np.float32)
        boxes = boxes[:, :4] if boxes.size else np.zeros((0, 4), np.float32)
        extra = reader.foreign_box(index)
        rushed = reader.rushed(index)
        if rushed is not None:
            real, shown = rushed
            x, y, _, mask = reader.plan.tube[real - reader.plan.foreign["source_first"]]
            boxes = _without(boxes, _box(x, y, mask))
            extra = _matching_box(np.asarray(source_boxes[shown], np.float32), extra)
        out.append(boxes if extra is None else np.vstack([boxes, extra[None]]))
    return out


def _matching_box(boxes: np.ndarray, box: np.ndarray, min_iou: float = 0.3) -> np.ndarray:
    """The row of ``boxes`` (k, 4..) that overlaps ``box`` most if IoU >= ``min_iou``, else ``box``."""
    if not boxes.size:
        return box
    iou = box_iou(boxes, box[None])[:, 0]
    best = int(np.argmax(iou))
    return boxes[best, :4].astype(np.float32) if iou[best] >= min_iou else box


def _box(x: int, y: int, mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    return np.array([x, y, x + w - 1, y + h - 1], np.float32)


def _without(boxes: np.ndarray, box: np.ndarray, min_iou: float = 0.3) -> np.ndarray:
    """``boxes`` less the one that overlaps ``box`` most, if IoU >= ``min_iou``."""
    if not len(boxes):
        return boxes
    iou = box_iou(boxes, box[None])[:, 0]
    best = int(np.argmax(iou))
    return np.delete(boxes, best, axis=0) if iou[best] >= min_iou else boxes
