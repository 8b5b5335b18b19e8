"""The scene's geometry, its actors and how they are drawn; the background and its sensor noise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

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
EXTENT = {"walker": (0.25, 0.25, 1.02), "runner": (0.35, 0.4, 1.02), "bike": (0.55, 0.55, 1.1),
           "cart": (0.3, 1.0, 1.02), "dog": (0.4, 0.4, 0.4)}


def actor_box(actor: Actor, t: float, frame_height: int) -> tuple[float, float, float, float]:
    """Approximate bounding box ``(x1, y1, x2, y2)`` of an actor at frame ``t``."""
    x, y = actor.feet(t)
    h = PERSON_HEIGHT * frame_height * float(perspective(y, frame_height)) * actor.size
    behind, ahead, tall = EXTENT[actor.kind]
    if actor.facing < 0:
        behind, ahead = ahead, behind
    return x - behind * h, y - tall * h, x + ahead * h, y + 0.02 * h


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


def visible_frames(actor: Actor, frames: int, height: int, width: int) -> np.ndarray:
    """Bool per frame of a video: does the actor's silhouette have a pixel on screen?"""
    visible = np.zeros(frames, bool)
    canvas = np.zeros((height, width), np.uint8)
    for i in range(max(0, actor.first), min(frames, actor.last + 1)):
        canvas[:] = 0
        draw_actor(Pen(canvas, mask=True), actor, i, height)
        visible[i] = canvas.any()
    return visible
