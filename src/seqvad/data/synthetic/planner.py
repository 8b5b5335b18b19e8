"""Planning a video: who walks where and when (each video from its own random stream)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from seqvad.data.synthetic.drawing import (EXTENT, GRASS_BAND, LANES_Y, PATH_BOTTOM, PATH_TOP, PERSON_HEIGHT, Actor,
                                         actor_box, perspective)
from seqvad.data.synthetic.settings import SceneConfig
from seqvad.errors import ConfigError

# --------------------------------------------------------------------------------------
# Planning a video: who walks where and when
# --------------------------------------------------------------------------------------
class Planner:
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
        margin = max(EXTENT[kind][:2]) * h + 2
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
