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

Modules: :mod:`.settings` (``SceneConfig``, presets), :mod:`.drawing` (geometry, actors, background),
:mod:`.planner` (who walks where and when), :mod:`.scene` (the videos, labels, masks; writing to disk).
"""

from seqvad.data.synthetic.drawing import Actor, actor_box, draw_actor, visible_frames
from seqvad.data.synthetic.scene import AnomalyEvent, SyntheticReader, SyntheticScene, make_scene, write_scene
from seqvad.data.synthetic.settings import ANOMALY_KINDS, SceneConfig, as_scene_config, scene_from_config

__all__ = ["ANOMALY_KINDS", "Actor", "AnomalyEvent", "SceneConfig", "SyntheticReader", "SyntheticScene", "actor_box",
           "as_scene_config", "draw_actor", "make_scene", "scene_from_config", "visible_frames", "write_scene"]
