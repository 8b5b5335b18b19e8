"""The built-in synthetic surveillance scene: the default data of ``seqvad demo`` and of the tests.

A fixed camera looks at a walkway crossing the frame (two lanes, people walking both
ways), a side path coming down towards the camera (people only walk *down* it), and grass
around them.  Training videos hold normal pedestrians only; test videos add anomaly events
of five kinds, each labelled per frame and with pixel masks:

* ``bike``: a cyclist on the walkway, 3-5x walking speed;
* ``cart``: a big slatted box pushed along the walkway;
* ``runner``: a person running (2.5-4x speed, faster and longer strides, leaning forward);
* ``against_flow``: a person walking *up* the one-way side path, so seen from behind
  (dark head, backpack) where everyone else is seen from the front;
* ``off_path``: a dog trotting across the grass, where nobody walks.

The number of pedestrians drifts over time inside each video and differs between videos,
so "how much moves" alone does not tell abnormal frames from normal ones.

Everything is deterministic from ``SceneConfig.seed``.  Frames are rendered lazily (an
object's position is a closed-form function of the frame index) and cached a few at a
time, so a scene costs almost no memory and any frame can be read in any order.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from seqvad.data.videos import FrameReader, Video
from seqvad.config import config_hash
from seqvad.errors import ConfigError

ANOMALY_KINDS = ("bike", "cart", "runner", "against_flow", "off_path")


@dataclass
class SceneConfig:
    """Size, content and randomness of a synthetic scene.

    Speeds are in pixels per frame for a 240-row frame and scale with ``height``.
    """

    height: int = 240
    width: int = 360
    train_videos: int = 8
    test_videos: int = 6
    frames_per_video: int = 150
    pedestrians: tuple[int, int] = (2, 5)  # people present at once: drifts inside this range
    seed: int = 0
    walk_speed: tuple[float, float] = (0.8, 1.5)
    noise_sigma: float = 2.5  # per-pixel sensor noise, grey levels
    drift: float = 0.05  # amplitude of the slow global brightness change (fraction)
    blur: bool = True  # a light optical blur, so edges are not razor sharp
    anomaly_kinds: tuple[str, ...] = ANOMALY_KINDS
    anomaly_rate: float = 0.4  # target fraction of abnormal test frames
    events_per_video: tuple[int, int] = (1, 2)
    fps: float = 25.0

    @classmethod
    def tiny(cls) -> "SceneConfig":
        """For unit tests: builds in well under a second."""
        return cls(height=64, width=96, train_videos=2, test_videos=2, frames_per_video=40,
                   pedestrians=(1, 3), events_per_video=(1, 1))

    @classmethod
    def demo(cls) -> "SceneConfig":
        """Ped2-like (240x360); ~2400 training frames, i.e. roughly 5-10k object cubes."""
        return cls(height=240, width=360, train_videos=12, test_videos=6, frames_per_video=200,
                   pedestrians=(1, 6))

    @classmethod
    def quick(cls) -> "SceneConfig":
        """For ``seqvad demo --quick``: small frames, few short videos, every anomaly kind."""
        return cls(height=120, width=180, train_videos=4, test_videos=3, frames_per_video=100,
                   pedestrians=(1, 5), events_per_video=(2, 2))

    @classmethod
    def named(cls, name: str) -> "SceneConfig":
        presets = {"tiny": cls.tiny, "demo": cls.demo, "quick": cls.quick}
        if name not in presets:
            raise ConfigError(f"unknown synthetic scene {name!r} (choose from {', '.join(presets)})")
        return presets[name]()

    def validate(self) -> None:
        problems = []
        if self.height < 32 or self.width < 32:
            problems.append(f"frame size {self.width}x{self.height} is below 32x32")
        if self.train_videos < 0 or self.test_videos < 0 or self.frames_per_video < 2:
            problems.append("video counts must be >= 0 and frames_per_video >= 2")
        low, high = self.pedestrians
        if not 0 <= low <= high:
            problems.append(f"pedestrians range {self.pedestrians} is not 0 <= low <= high")
        if not 0 < self.walk_speed[0] <= self.walk_speed[1]:
            problems.append(f"walk_speed range {self.walk_speed} is not 0 < low <= high")
        unknown = set(self.anomaly_kinds) - set(ANOMALY_KINDS)
        if unknown or not self.anomaly_kinds:
            problems.append(f"anomaly_kinds must be a non-empty subset of {ANOMALY_KINDS}")
        if not 0 <= self.anomaly_rate <= 1:
            problems.append("anomaly_rate must lie in [0, 1]")
        if not 1 <= self.events_per_video[0] <= self.events_per_video[1]:
            problems.append(f"events_per_video range {self.events_per_video} is not 1 <= low <= high")
        if problems:
            raise ConfigError("invalid synthetic scene: " + "; ".join(problems))


# --------------------------------------------------------------------------------------
# Scene geometry, in fractions of the frame (x of width, y of height)
# --------------------------------------------------------------------------------------
WALKWAY = (0.34, 0.83)  # top and bottom edge of the walkway band
LANES_Y = {"far": 0.47, "near": 0.72}  # feet lines of the two walkway lanes
PATH_TOP, PATH_BOTTOM = (0.70, -0.10), (0.82, 1.35)  # centre line of the one-way side path
GRASS_BAND = (0.88, 0.96)  # where the off-path dog trots (near grass below the walkway)
PERSON_HEIGHT = 0.18  # of the frame height, for a person on the near lane
SHIFT = 4  # fractional bits of cv2 drawing coordinates: smooth sub-pixel motion
ONE = 1 << SHIFT


def perspective(y: float | np.ndarray, height: int) -> float | np.ndarray:
    """Apparent size factor of an object whose feet are at row ``y`` (1.0 on the near lane)."""
    return 0.35 + 0.9 * (y / height)


# --------------------------------------------------------------------------------------
# Actors: anything that moves, with a closed-form trajectory
# --------------------------------------------------------------------------------------
@dataclass
class Actor:
    """One moving object: straight-line motion ``origin + velocity * (t - t0)``.

    ``first``..``last`` bound the frames where it may be on screen (it is drawn only then).
    ``size`` multiplies the perspective height; ``gait`` is the leg phase speed (rad/frame).
    """

    kind: str  # walker | runner | bike | cart | dog
    origin: tuple[float, float]
    velocity: tuple[float, float]
    t0: float
    first: int
    last: int
    size: float
    gait: float
    phase: float
    view: str  # side | front | back
    colors: dict
    abnormal: bool = False
    event: str | None = None  # the anomaly kind this actor embodies

    def feet(self, t: float) -> tuple[float, float]:
        dt = t - self.t0
        return self.origin[0] + self.velocity[0] * dt, self.origin[1] + self.velocity[1] * dt

    @property
    def facing(self) -> int:
        return 1 if self.velocity[0] >= 0 else -1


class Pen:
    """cv2 drawing in float pixel coordinates; in mask mode every part is painted 255."""

    def __init__(self, image: np.ndarray, mask: bool = False):
        self.image = image
        self.mask = mask
        self.line_type = cv2.LINE_8 if mask else cv2.LINE_AA

    def _c(self, color):
        return 255 if self.mask else color

    @staticmethod
    def _p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * ONE)), int(round(y * ONE))

    def line(self, p, q, color, thickness: float) -> None:
        cv2.line(self.image, self._p(*p), self._p(*q), self._c(color),
                 max(1, int(round(thickness))), self.line_type, SHIFT)

    def disc(self, p, radius: float, color, thickness: int = -1) -> None:
        cv2.circle(self.image, self._p(*p), max(1, int(round(radius * ONE))), self._c(color),
                   thickness, self.line_type, SHIFT)

    def ellipse(self, p, axes, color, angle: float = 0.0, start: float = 0.0, end: float = 360.0) -> None:
        axes = (max(1, int(round(axes[0] * ONE))), max(1, int(round(axes[1] * ONE))))
        cv2.ellipse(self.image, self._p(*p), axes, angle, start, end, self._c(color), -1,
                    self.line_type, SHIFT)

    def polygon(self, points, color) -> None:
        pts = np.round(np.asarray(points, dtype=np.float64) * ONE).astype(np.int32)
        cv2.fillConvexPoly(self.image, pts, self._c(color), self.line_type, SHIFT)


def _draw_side_person(pen: Pen, x, y, h, phase, facing, colors, stride=0.35, lean=0.0) -> None:
    """A person seen from the side: legs and arms swing with the gait phase."""
    leg = 0.46 * h
    hip = (x, y - leg)
    swing = stride * math.sin(phase)
    lean_x = lean * h * facing
    shoulder = (x + 0.6 * lean_x, y - 0.82 * h)
    limb = max(1.0, 0.075 * h)
    for sign, shade in ((-1, 0.7), (1, 1.0)):  # far leg darker, drawn first
        angle = sign * swing
        foot = (x + math.sin(angle) * leg, y - leg + math.cos(angle) * leg)
        pen.line(hip, foot, _shade(colors["legs"], shade), limb)
    back_hand = (shoulder[0] + math.sin(swing) * 0.3 * h, shoulder[1] + math.cos(swing) * 0.3 * h)
    pen.line(shoulder, back_hand, _shade(colors["shirt"], 0.7), 0.8 * limb)
    pen.ellipse((x + 0.4 * lean_x, y - 0.66 * h), (0.09 * h, 0.2 * h), colors["shirt"],
                angle=math.degrees(lean) * facing)
    front_hand = (shoulder[0] - math.sin(swing) * 0.3 * h, shoulder[1] + math.cos(swing) * 0.3 * h)
    pen.line(shoulder, front_hand, colors["shirt"], 0.8 * limb)
    head = (x + lean_x + 0.02 * h * facing, y - 0.92 * h)
    pen.disc(head, 0.085 * h, colors["skin"])
    # hair over the back and top of the head: the side a person faces is visible
    start = 135 if facing > 0 else -135
    pen.ellipse(head, (0.09 * h, 0.09 * h), colors["hair"], start=start, end=start + 180)


def _draw_frontal_person(pen: Pen, x, y, h, phase, colors, back: bool) -> None:
    """A person walking towards (``back=False``) or away from the camera."""
    limb = max(1.0, 0.075 * h)
    for side, lift in ((-1, max(0.0, math.sin(phase))), (1, max(0.0, -math.sin(phase)))):
        hip = (x + side * 0.05 * h, y - 0.46 * h)
        pen.line(hip, (x + side * 0.06 * h, y - 0.08 * h * lift), colors["legs"], limb)
    pen.ellipse((x, y - 0.66 * h), (0.13 * h, 0.2 * h), colors["shirt"])
    for side in (-1, 1):
        sway = 0.04 * h * math.sin(phase) * side
        pen.line((x + side * 0.12 * h, y - 0.82 * h), (x + side * 0.16 * h, y - 0.52 * h + sway),
                 colors["shirt"], 0.8 * limb)
    head = (x, y - 0.92 * h)
    if back:  # from behind: the whole head is hair, and a backpack covers the torso
        pen.disc(head, 0.085 * h, colors["hair"])
        pen.ellipse((x, y - 0.68 * h), (0.1 * h, 0.13 * h), colors["pack"])
    else:
        pen.disc(head, 0.085 * h, colors["skin"])
        pen.ellipse(head, (0.09 * h, 0.09 * h), colors["hair"], start=180, end=360)


def _draw_bike(pen: Pen, x, y, h, phase, facing, colors) -> None:
    """A cyclist seen from the side: two wheels, a frame, a rider pedalling."""
    radius = 0.2 * h
    rear, front = (x - facing * 0.31 * h, y - radius), (x + facing * 0.31 * h, y - radius)
    crank = (x, y - radius)
    seat = (x - facing * 0.1 * h, y - 0.55 * h)
    bar = (x + facing * 0.24 * h, y - 0.62 * h)
    tube = max(1.0, 0.04 * h)
    for wheel in (rear, front):
        pen.disc(wheel, radius, colors["wheel"], thickness=max(1, int(round(0.045 * h))))
    for p, q in ((rear, seat), (seat, crank), (crank, rear), (seat, bar), (bar, front), (crank, bar)):
        pen.line(p, q, colors["frame"], tube)
    pedal = (crank[0] + 0.09 * h * math.cos(phase), crank[1] + 0.09 * h * math.sin(phase))
    knee = ((seat[0] + pedal[0]) / 2 + facing * 0.12 * h, (seat[1] + pedal[1]) / 2 - 0.05 * h)
    limb = max(1.0, 0.075 * h)
    pen.line(seat, knee, colors["legs"], limb)
    pen.line(knee, pedal, colors["legs"], limb)
    torso = (x + facing * 0.02 * h, y - 0.76 * h)
    pen.ellipse(torso, (0.08 * h, 0.18 * h), colors["shirt"], angle=35 * facing)
    shoulder = (x + facing * 0.08 * h, y - 0.88 * h)
    pen.line(shoulder, bar, colors["shirt"], 0.8 * limb)
    head = (x + facing * 0.14 * h, y - 1.0 * h)
    pen.disc(head, 0.085 * h, colors["skin"])
    pen.ellipse(head, (0.09 * h, 0.09 * h), colors["hair"], start=180, end=360)


def _draw_cart(pen: Pen, x, y, h, phase, facing, colors) -> None:
    """A person pushing a large slatted box on small wheels ahead of them."""
    near, far = x + facing * 0.22 * h, x + facing * 0.98 * h
    left, right = min(near, far), max(near, far)
    top, bottom = y - 0.58 * h, y - 0.1 * h
    pen.polygon([(left, top), (right, top), (right, bottom), (left, bottom)], colors["box"])
    for k in range(1, 4):  # contrasting slats make the box's motion visible inside it
        row = top + (bottom - top) * k / 4
        pen.line((left, row), (right, row), colors["slat"], max(1.0, 0.035 * h))
    for wheel_x in (left + 0.08 * h, right - 0.08 * h):
        pen.disc((wheel_x, y - 0.05 * h), 0.055 * h, colors["wheel"])
    pen.line((x + facing * 0.12 * h, y - 0.6 * h), (near, top), colors["wheel"], max(1.0, 0.04 * h))
    _draw_side_person(pen, x, y, h, phase, facing, colors, stride=0.3, lean=0.1)


def _draw_dog(pen: Pen, x, y, h, phase, facing, colors) -> None:
    """A dog trotting: diagonal leg pairs swing together."""
    limb = max(1.0, 0.05 * h)
    for leg_x, sign in ((0.15, 1), (-0.14, -1)):
        for pair, shade in ((1, 0.7), (-1, 1.0)):
            swing = 0.07 * h * math.sin(phase) * sign * pair
            top = (x + facing * leg_x * h, y - 0.17 * h)
            pen.line(top, (top[0] + facing * swing, y), _shade(colors["coat"], shade), limb)
    pen.ellipse((x, y - 0.21 * h), (0.21 * h, 0.075 * h), colors["coat"])
    head = (x + facing * 0.25 * h, y - 0.3 * h)
    pen.disc(head, 0.065 * h, colors["coat"])
    pen.ellipse((head[0] + facing * 0.06 * h, head[1] + 0.02 * h), (0.05 * h, 0.03 * h), colors["snout"])
    wag = 0.04 * h * math.sin(2 * phase)
    pen.line((x - facing * 0.2 * h, y - 0.24 * h), (x - facing * 0.32 * h, y - 0.34 * h + wag),
             colors["coat"], limb)


def _shade(color, factor: float):
    return tuple(float(c) * factor for c in color)


def draw_actor(pen: Pen, actor: Actor, t: int, frame_height: int) -> None:
    x, y = actor.feet(t)
    h = PERSON_HEIGHT * frame_height * float(perspective(y, frame_height)) * actor.size
    phase = actor.phase + actor.gait * t
    if actor.kind in ("walker", "runner") and actor.view != "side":
        _draw_frontal_person(pen, x, y, h, phase, actor.colors, back=actor.view == "back")
    elif actor.kind == "walker":
        _draw_side_person(pen, x, y, h, phase, actor.facing, actor.colors)
    elif actor.kind == "runner":
        _draw_side_person(pen, x, y, h, phase, actor.facing, actor.colors, stride=0.6, lean=0.2)
    elif actor.kind == "bike":
        _draw_bike(pen, x, y, h, phase, actor.facing, actor.colors)
    elif actor.kind == "cart":
        _draw_cart(pen, x, y, h, phase, actor.facing, actor.colors)
    elif actor.kind == "dog":
        _draw_dog(pen, x, y, h, phase, actor.facing, actor.colors)
    else:  # pragma: no cover - guarded by construction
        raise ValueError(f"unknown actor kind {actor.kind}")


# (half-width behind, half-width ahead, height) of each kind, in person heights: for
# visibility windows and ground-truth boxes
_EXTENT = {"walker": (0.25, 0.25, 1.02), "runner": (0.35, 0.4, 1.02), "bike": (0.55, 0.55, 1.1),
           "cart": (0.3, 1.0, 1.02), "dog": (0.4, 0.4, 0.4)}


def actor_box(actor: Actor, t: float, frame_height: int) -> tuple[float, float, float, float]:
    """Approximate bounding box ``(x1, y1, x2, y2)`` of an actor at frame ``t``."""
    x, y = actor.feet(t)
    h = PERSON_HEIGHT * frame_height * float(perspective(y, frame_height)) * actor.size
    behind, ahead, tall = _EXTENT[actor.kind]
    if actor.facing < 0:
        behind, ahead = ahead, behind
    return x - behind * h, y - tall * h, x + ahead * h, y + 0.02 * h


# --------------------------------------------------------------------------------------
# Planning a video: who walks where and when
# --------------------------------------------------------------------------------------
class _Planner:
    """Makes the actors of one video from its own random stream."""

    def __init__(self, config: SceneConfig, rng: np.random.Generator):
        self.c = config
        self.rng = rng
        self.H, self.W = config.height, config.width
        self.px = config.height / 240.0  # speeds are given for 240-row frames

    # -- appearance ---------------------------------------------------------------
    def _grey(self, low: int, high: int, tint: int = 12) -> tuple[float, float, float]:
        level = self.rng.uniform(low, high)
        return tuple(float(np.clip(level + self.rng.uniform(-tint, tint), 0, 255)) for _ in range(3))

    def person_colors(self) -> dict:
        skin = self.rng.uniform(110, 200)
        return {"shirt": self._grey(35, 225, tint=25), "legs": self._grey(25, 120),
                "skin": (skin * 0.8, skin * 0.9, skin), "hair": self._grey(15, 60, tint=5),
                "pack": self._grey(20, 70, tint=20)}

    # -- trajectories ---------------------------------------------------------------
    def _linear(self, kind, start, end, speed, t_enter, **fields) -> Actor:
        """An actor moving from ``start`` to ``end`` (both off screen) at ``speed`` px/frame."""
        (x0, y0), (x1, y1) = start, end
        length = math.hypot(x1 - x0, y1 - y0)
        velocity = ((x1 - x0) / length * speed, (y1 - y0) / length * speed)
        return Actor(kind=kind, origin=(x0, y0), velocity=velocity, t0=t_enter,
                     first=int(math.floor(t_enter)), last=int(math.ceil(t_enter + length / speed)),
                     **fields)

    def _gait(self, speed: float, y: float, stride: float) -> float:
        """Leg phase speed so that feet roughly keep pace with the ground."""
        h = PERSON_HEIGHT * self.H * float(perspective(y, self.H))
        return math.pi * speed / (stride * h)

    def _off_screen_x(self, facing: int, y: float, kind: str) -> tuple[float, float]:
        """Start and end x of a crossing that begins and ends just out of sight."""
        h = 1.1 * PERSON_HEIGHT * self.H * float(perspective(y, self.H))  # 1.1: largest size jitter
        margin = max(_EXTENT[kind][:2]) * h + 2
        left, right = -margin, self.W + margin
        return (left, right) if facing > 0 else (right, left)

    def lane_actor(self, lane: str, t_enter: float, kind: str = "walker", speed_range=None,
                   colors: dict | None = None, **extra) -> Actor:
        """Someone (or something) crossing the walkway along ``lane`` in a random direction.

        ``speed_range`` is in px/frame for the near lane of a 240-row frame; on the far lane
        the speed shrinks with the apparent size."""
        y = (LANES_Y[lane] + self.rng.uniform(-0.025, 0.025)) * self.H
        facing = 1 if self.rng.random() < 0.5 else -1
        base = self.rng.uniform(*(speed_range or self.c.walk_speed))
        speed = base * self.px * float(perspective(y, self.H))
        x0, x1 = self._off_screen_x(facing, y, kind)
        stride = {"walker": 0.45, "runner": 0.9, "bike": 0.3, "cart": 0.45}[kind]
        return self._linear(kind, (x0, y), (x1, y), speed, t_enter, size=self.rng.uniform(0.9, 1.1),
                            gait=self._gait(speed, y, stride), phase=self.rng.uniform(0, 2 * math.pi),
                            view="side", colors=colors or self.person_colors(), **extra)

    def path_walker(self, t_enter: float, upward: bool = False, **extra) -> Actor:
        """Someone on the side path: normally walking down (towards the camera). The pixel
        speed is constant along the path (no perspective), which is close enough here."""
        offset = self.rng.uniform(-0.015, 0.015) * self.W
        top = (PATH_TOP[0] * self.W + offset, PATH_TOP[1] * self.H)
        bottom = (PATH_BOTTOM[0] * self.W + offset, PATH_BOTTOM[1] * self.H)
        start, end = (bottom, top) if upward else (top, bottom)
        speed = self.rng.uniform(*self.c.walk_speed) * self.px
        return self._linear("walker", start, end, speed, t_enter, size=self.rng.uniform(0.9, 1.1),
                            gait=self._gait(speed, 0.6 * self.H, 0.45),
                            phase=self.rng.uniform(0, 2 * math.pi),
                            view="back" if upward else "front", colors=self.person_colors(), **extra)

    def normal_walker(self, t_enter: float) -> Actor:
        route = self.rng.choice(["far", "near", "path"], p=[0.38, 0.38, 0.24])
        return self.path_walker(t_enter) if route == "path" else self.lane_actor(route, t_enter)

    def anomaly(self, kind: str, t_enter: float) -> Actor:
        tag = {"abnormal": True, "event": kind}
        lane = "far" if self.rng.random() < 0.4 else "near"
        walk = sum(self.c.walk_speed) / 2  # anomalous speeds are multiples of the mean walk
        if kind == "runner":
            return self.lane_actor(lane, t_enter, "runner", (2.6 * walk, 3.6 * walk), **tag)
        if kind == "against_flow":
            return self.path_walker(t_enter, upward=True, **tag)
        if kind in ("bike", "cart"):
            colors = dict(self.person_colors(), frame=self._grey(30, 200, tint=60),
                          wheel=self._grey(15, 45, tint=5), box=self._grey(60, 120, tint=20),
                          slat=self._grey(190, 240, tint=10))
            low, high = (3.2, 4.6) if kind == "bike" else (1.2, 1.7)
            return self.lane_actor(lane, t_enter, kind, (low * walk, high * walk), colors=colors, **tag)
        if kind == "off_path":
            y0 = self.rng.uniform(*GRASS_BAND) * self.H
            y1 = float(np.clip(y0 + self.rng.uniform(-0.04, 0.04) * self.H, *(np.array(GRASS_BAND) * self.H)))
            facing = 1 if self.rng.random() < 0.5 else -1
            x0, x1 = self._off_screen_x(facing, y0, "dog")
            speed = self.rng.uniform(1.8, 2.8) * self.px
            coat = self._grey(50, 170, tint=10)
            colors = {"coat": (coat[0] * 0.7, coat[1] * 0.85, coat[2]), "snout": self._grey(20, 50, tint=5)}
            return self._linear("dog", (x0, y0), (x1, y1), speed, t_enter, size=1.0,
                                gait=self._gait(speed, y0, 0.25), phase=self.rng.uniform(0, 2 * math.pi),
                                view="side", colors=colors, **tag)
        raise ConfigError(f"unknown anomaly kind {kind!r}")

    # -- crowds -------------------------------------------------------------------------
    def crowd_target(self, length: int) -> np.ndarray:
        """People wanted on screen at each frame: a level that steps up and down now and then."""
        low, high = self.c.pedestrians
        target = np.empty(length, dtype=int)
        level, t = int(self.rng.integers(low, high + 1)), 0
        while t < len(target):
            span = int(self.rng.integers(40, 110))
            target[t:t + span] = level
            level = int(np.clip(level + self.rng.choice([-2, -1, 1, 2]), low, high))
            t += span
        return target

    def pedestrians(self, frames: int) -> list[Actor]:
        """Spawn walkers whenever fewer are on screen than wanted, starting well before frame 0
        so that the video opens on a scene already in its steady state."""
        warmup = int(math.ceil(1.4 * self.W / (self.c.walk_speed[0] * self.px * 0.7)))
        target = self.crowd_target(warmup + frames)
        actors: list[Actor] = []
        firsts, lasts = np.zeros(0, int), np.zeros(0, int)
        next_spawn = -warmup
        for t in range(-warmup, frames):
            present = int(np.count_nonzero((firsts <= t) & (lasts >= t)))
            if present < target[t + warmup] and t >= next_spawn:
                actor = self.normal_walker(t)
                actors.append(actor)
                firsts, lasts = np.append(firsts, actor.first), np.append(lasts, actor.last)
                next_spawn = t + int(self.rng.integers(6, 25))  # people do not arrive in lockstep
        return [a for a in actors if a.last >= 0]

    # -- anomaly events -----------------------------------------------------------------
    def _on_screen(self, actor: Actor) -> tuple[int, int]:
        """First and last frame where the actor's box overlaps the frame (box estimate)."""
        on = [t for t in range(actor.first, actor.last + 1)
              if _overlaps(actor_box(actor, t, self.H), self.W, self.H)]
        return (on[0], on[-1]) if on else (actor.first, actor.first - 1)

    def events(self, kinds: list[str], frames: int) -> list[Actor]:
        """One actor per kind, together on screen for about ``anomaly_rate`` of the video.

        A crossing that fits its share is placed inside the video at random; a longer one is
        cut by the video's start (the object is already there) or end (it is still there)."""
        share = self.c.anomaly_rate * frames / max(1, len(kinds))
        slot = frames / max(1, len(kinds))
        actors = []
        for j, kind in enumerate(kinds):
            probe = self.anomaly(kind, 0.0)
            shown_first, shown_last = self._on_screen(probe)
            shown = shown_last - shown_first + 1
            want = share * self.rng.uniform(0.8, 1.2)
            if shown <= want:
                start = j * slot + self.rng.uniform(0, max(0.0, slot - shown))
            elif j == 0 and (len(kinds) > 1 or self.rng.random() < 0.5):
                start = want - shown
            else:
                start = frames - want
            shift = start - shown_first  # move the whole trajectory in time
            actors.append(replace(probe, t0=probe.t0 + shift, first=probe.first + int(math.floor(shift)),
                                  last=probe.last + int(math.ceil(shift))))
        return actors


def _overlaps(box, width: int, height: int) -> bool:
    x1, y1, x2, y2 = box
    return x2 >= 0 and y2 >= 0 and x1 < width and y1 < height


# --------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Value noise in [-1, 1]: random values on a coarse grid, cubic-interpolated."""
    grid = rng.uniform(-1, 1, (max(2, height // cells), max(2, width // cells))).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def make_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Grass around a paved walkway and a side path, with joints, lamp posts and bushes."""
    H, W = height, width
    fine = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 0.7)
    light = 10 * _smooth_noise(rng, H, W, max(8, H // 6)) + 5 * _smooth_noise(rng, H, W, max(4, H // 24))
    grass = np.array([88, 112, 100], np.float32) + (light + 9 * fine)[..., None]
    paving = np.array([162, 166, 170], np.float32) + (0.6 * light + 3 * fine)[..., None]
    sand = np.array([138, 152, 162], np.float32) + (0.6 * light + 4 * fine)[..., None]

    walkway = np.zeros((H, W), np.uint8)
    top, bottom = WALKWAY[0] * H, WALKWAY[1] * H
    cv2.rectangle(walkway, (0, int(top)), (W, int(bottom)), 1, -1)
    path = np.zeros((H, W), np.uint8)
    (tx, ty), (bx, by) = PATH_TOP, PATH_BOTTOM
    half_top, half_bottom = 0.025 * W, 0.075 * W  # the path widens towards the camera
    corners = [(tx * W - half_top, ty * H), (tx * W + half_top, ty * H),
               (bx * W + half_bottom, by * H), (bx * W - half_bottom, by * H)]
    cv2.fillConvexPoly(path, np.round(np.array(corners)).astype(np.int32), 1)

    image = np.where(walkway[..., None] > 0, paving, np.where(path[..., None] > 0, sand, grass))
    _draw_paving_joints(image, H, W, top, bottom)
    _draw_clutter(image, H, W, rng)
    return np.clip(image, 0, 255).astype(np.uint8)


def _draw_paving_joints(image: np.ndarray, H: int, W: int, top: float, bottom: float) -> None:
    """Kerbs along the walkway and slab joints converging to a vanishing point above."""
    kerb = (120, 124, 128)
    for row in (top, bottom):
        cv2.line(image, (0, int(row)), (W, int(row)), kerb, max(1, H // 120))
    vanish_x, vanish_y = 0.5 * W, -1.2 * H
    for k in range(-6, 16):
        x_top = k * 0.09 * W
        x_bottom = vanish_x + (x_top - vanish_x) * (bottom - vanish_y) / (top - vanish_y)
        cv2.line(image, (int(x_top), int(top)), (int(x_bottom), int(bottom)), (145, 149, 153), 1, cv2.LINE_AA)
    for frac in (0.33, 0.66):
        row = int(top + frac * (bottom - top))
        cv2.line(image, (0, row), (W, row), (148, 152, 156), 1, cv2.LINE_AA)


def _draw_clutter(image: np.ndarray, H: int, W: int, rng: np.random.Generator) -> None:
    """Static things that never move: lamp posts on the far kerb, bushes on the far grass."""
    for x in (0.18 * W, 0.52 * W, 0.92 * W):
        post_top, post_bottom = (int(x), int(0.1 * H)), (int(x), int(WALKWAY[0] * H))
        cv2.line(image, post_bottom, post_top, (60, 62, 66), max(1, H // 100))
        cv2.circle(image, post_top, max(1, H // 70), (200, 210, 215), -1, cv2.LINE_AA)
    for _ in range(4):
        x = rng.choice([rng.uniform(0.03, 0.58), rng.uniform(0.86, 0.98)]) * W
        y = rng.uniform(0.1, 0.26) * H
        axes = (int(rng.uniform(0.03, 0.06) * W), int(rng.uniform(0.03, 0.05) * H))
        shade = rng.uniform(0.45, 0.7)
        color = (60 * shade, 95 * shade, 70 * shade)
        cv2.ellipse(image, (int(x), int(y)), axes, 0, 0, 360, color, -1, cv2.LINE_AA)


# --------------------------------------------------------------------------------------
# Rendering a video lazily
# --------------------------------------------------------------------------------------
class NoiseBank:
    """Sensor noise for any number of frames from a few precomputed noise images.

    Drawing fresh Gaussian noise costs more than the rest of a frame's rendering; a frame
    takes a window at a random offset of one of ``size`` larger noise images instead, which
    is as good as independent noise for everything downstream.
    """

    PAD = 32

    def __init__(self, height: int, width: int, sigma: float, rng: np.random.Generator, size: int = 8):
        shape = (size, height + self.PAD, width + self.PAD, 3)
        self.images = np.round(rng.standard_normal(shape, dtype=np.float32) * sigma).astype(np.int16)
        self.height, self.width = height, width

    def picks(self, rng: np.random.Generator, frames: int) -> np.ndarray:
        """``(frames, 3)`` rows (image, dy, dx): which window each frame uses."""
        return rng.integers(0, (len(self.images), self.PAD, self.PAD), size=(frames, 3))

    def sample(self, image: int, dy: int, dx: int) -> np.ndarray:
        return self.images[image, dy:dy + self.height, dx:dx + self.width]


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


def visible_frames(actor: Actor, frames: int, height: int, width: int) -> np.ndarray:
    """Bool per frame of a video: does the actor's silhouette have a pixel on screen?"""
    visible = np.zeros(frames, bool)
    canvas = np.zeros((height, width), np.uint8)
    for i in range(max(0, actor.first), min(frames, actor.last + 1)):
        canvas[:] = 0
        draw_actor(Pen(canvas, mask=True), actor, i, height)
        visible[i] = canvas.any()
    return visible


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
        planner = _Planner(c, rng)
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


def _as_config(config: SceneConfig | str | None) -> SceneConfig:
    if config is None:
        return SceneConfig.demo()
    if isinstance(config, str):
        return SceneConfig.named(config)
    if isinstance(config, SceneConfig):
        return config
    raise ConfigError(f"a synthetic scene is a SceneConfig or a preset name, not {type(config).__name__}")


def scene_from_config(data_cfg: dict) -> SceneConfig:
    """The scene a config's ``data`` section names: ``scene`` (a preset name or a dict of
    SceneConfig fields) and an optional ``scene_seed`` (another draw of the same scene, e.g. a
    validation scene to tune on without touching the one that is reported)."""
    scene = data_cfg.get("scene") or "demo"
    if isinstance(scene, dict):
        unknown = sorted(set(scene) - set(SceneConfig.__dataclass_fields__))
        if unknown:
            raise ConfigError(f"data.scene: unknown field(s) {unknown}")
        config = SceneConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in scene.items()})
    else:
        config = _as_config(scene)
    if data_cfg.get("scene_seed") is not None:
        config = replace(config, seed=int(data_cfg["scene_seed"]))
    return config


def make_scene(config: SceneConfig | str = "demo") -> tuple[list[Video], list[Video]]:
    """``(train_videos, test_videos)`` of a scene given by its config or preset name."""
    scene = SyntheticScene(_as_config(config))
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
                cv2.imwrite(str(folder / f"{i:0{digits}d}.png"), video.frame(i))
            if split == "testing":
                np.save(root / "labels" / f"{video.name}.npy", video.labels)
            if progress is not None:
                progress(f"{split}/{video.name}: {len(video)} frames")
    return root
