"""What a synthetic scene is made of: its settings (``SceneConfig``, the presets) and the anomaly kinds."""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def as_scene_config(config: SceneConfig | str | None) -> SceneConfig:
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
        config = as_scene_config(scene)
    if data_cfg.get("scene_seed") is not None:
        config = replace(config, seed=int(data_cfg["scene_seed"]))
    return config
