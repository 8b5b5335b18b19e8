"""Prepare a split: detect objects in every video, cut their cubes, cache them on disk.

``prepare_split(videos, config, cache_dir)`` returns a :class:`CubeStore`.  A cache built
with the same settings for the same videos is reused; anything else (other settings,
other videos, a damaged or half-written cache) is rebuilt with a warning saying why.
Videos are processed in parallel worker processes (``spawn``: safe beside torch and
onnxruntime threads); each worker writes its cubes to a part file, and the parent joins
the parts into one memory-mappable ``cubes.npy``, so no process holds the whole split.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import multiprocessing
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import seqvad
from seqvad.atomic import replacing
from seqvad.config import DEFAULTS, config_hash, cube_geometry
from seqvad.progress import Progress
from seqvad.data.videos import Video
from seqvad.errors import ConfigError, DataError
from seqvad.objects.cubes import STORE_FORMAT, CubeStore
from seqvad.objects.detectors import Detector, default_threads, detector_class, file_sha256, load_box_file  # noqa: F401

log = logging.getLogger(__name__)

def resolve_boxes_path(config: Mapping[str, Any], split: str | None) -> Path:
    """The precomputed boxes file of ``split``.

    ``detector.boxes`` is a path, a path with ``{split}`` in it, or a mapping split -> path.
    A relative path that does not exist from the working directory is taken relative to
    ``data.root``.
    """
    boxes = (config.get("detector") or {}).get("boxes")
    if isinstance(boxes, Mapping):
        if split not in boxes:
            raise ConfigError(f"detector.boxes: no boxes file for split {split!r} (have {sorted(boxes)})")
        boxes = boxes[split]
    if not boxes:
        raise ConfigError("detector.boxes: the precomputed detector needs a boxes file (.npz, .csv or .npy)")
    text = str(boxes)
    if "{split}" in text:
        if split is None:
            raise ConfigError(f"detector.boxes: {text} names a {{split}} but no split was given")
        text = text.replace("{split}", split)
    path = Path(text).expanduser()
    root = (config.get("data") or {}).get("root")
    if not path.is_absolute() and not path.exists() and root:
        under_root = Path(root).expanduser() / path
        # a .npz still to be converted from the .npy beside it: name the place where the .npy is
        if under_root.exists() or not path.with_suffix(".npy").exists():
            path = under_root
    return path


def cache_key(detector_cfg: Mapping[str, Any], cubes_cfg: Mapping[str, Any],
              boxes_file: str | os.PathLike | None = None) -> str:
    """Hash of everything that decides the cubes: the active detector's settings (its
    ``cache_fields``: e.g. the model or boxes file content), the cube settings and the store format."""
    name = detector_cfg.get("name")
    key: dict[str, Any] = {"name": name, "format": STORE_FORMAT,
                           "cubes": {k: cubes_cfg.get(k, DEFAULTS["cubes"][k]) for k in DEFAULTS["cubes"]},
                           **detector_class(name or DEFAULTS["detector"]["name"]).cache_fields(detector_cfg, boxes_file)}
    return config_hash(key)


# --------------------------------------------------------------------------------------
# One video (runs in a worker process)
# --------------------------------------------------------------------------------------

@dataclass
class _Job:
    number: int
    video: Video
    detector_cfg: dict
    kind: type  # the registered detector class (pickled by reference: plugins reach worker processes)
    cubes_cfg: dict
    part: Path
    boxes: list | None = None  # precomputed boxes of this video
    threads: int | None = None
    single_thread_cv: bool = False


_DETECTORS: dict[tuple, Detector] = {}  # per process: building a YOLOX session per video is wasteful


def _detector_for(job: _Job) -> Detector:
    if job.boxes is not None:
        return job.kind.from_config(job.detector_cfg, video_name=job.video.name, boxes=job.boxes)
    key = (job.kind, config_hash(job.detector_cfg), job.threads)
    if key not in _DETECTORS:
        if len(_DETECTORS) >= 2:  # a long-lived process trying many settings: keep memory bounded
            _DETECTORS.clear()
        _DETECTORS[key] = job.kind.from_config(job.detector_cfg, video_name=job.video.name, threads=job.threads)
    return _DETECTORS[key]


def _process_video(job: _Job) -> dict[str, Any]:
    if job.single_thread_cv:
        import cv2

        cv2.setNumThreads(1)  # one worker per core already; OpenCV's own pool would oversubscribe
    start, start_cpu = time.perf_counter(), time.process_time()
    # boxes and cubes in one read of the video (the detect time below includes the cutting)
    cubes, index = _detector_for(job).cut_video(job.video, **cube_geometry({"cubes": job.cubes_cfg}))
    detected, detected_cpu = time.perf_counter(), time.process_time()
    index["video"][:] = job.number
    with replacing(job.part) as tmp, open(tmp, "wb") as handle:
        np.save(handle, cubes)
    return {"number": job.number, "index": index, "frames": len(job.video), "objects": len(cubes),
            "detect_seconds": detected - start, "extract_seconds": time.perf_counter() - detected,
            # CPU time does not grow when other programs share the cores: the speed on an idle machine
            "detect_cpu_seconds": detected_cpu - start_cpu, "extract_cpu_seconds": time.process_time() - detected_cpu}


def _portable(video: Video) -> Video:
    """The video without labels or mask callbacks (closures do not pickle; workers need frames only)."""
    return Video(video.name, video.reader, fps=video.fps)


# --------------------------------------------------------------------------------------
# A split
# --------------------------------------------------------------------------------------

def prepare_split(videos: Sequence[Video], config: Mapping[str, Any], cache_dir: str | os.PathLike,
                  workers: int | None = None, progress: bool = True, split: str | None = None,
                  rebuild: bool = False, keep: bool = False) -> CubeStore:
    """Detect objects and extract cubes of ``videos`` into ``cache_dir`` (or reuse it).

    ``config`` needs the sections ``detector`` and ``cubes`` (``data.root`` resolves a
    relative boxes file).  ``workers``: processes (default: one per core, at most one per
    video).  ``split`` picks the boxes file of a precomputed detector.  ``progress`` shows
    a bar and prints a one-line summary.  ``keep``: the cache belongs to a trained run, whose
    weights were learnt on it: refuse to rebuild it (other videos, boxes or settings).
    """
    cache_dir = Path(cache_dir)
    detector_cfg = dict(config.get("detector") or DEFAULTS["detector"])
    cubes_cfg = {**DEFAULTS["cubes"], **(config.get("cubes") or {})}
    if not videos:
        raise DataError(f"{cache_dir}: no videos to prepare")
    names = [v.name for v in videos]
    if len(set(names)) != len(names):
        raise DataError(f"{cache_dir}: video names repeat ({len(names) - len(set(names))} duplicates); "
                        "the cache identifies videos by name")
    kind = detector_class(detector_cfg.get("name") or DEFAULTS["detector"]["name"])
    # video files: the container's frame count, not a decoding pass; the true count comes with
    # the boxes (the cache check counts only when the container's count disagrees with the cache)
    frame_counts = [len(v) if kind.uses_split_boxes else v.reader.length_hint() for v in videos]
    split_boxes = boxes_file = None
    if kind.uses_split_boxes:
        boxes_file = resolve_boxes_path(config, split)
        # a pickled .npy loads only when named with --allow-pickle (precomputed.allow_pickle_for)
        split_boxes = load_box_file(boxes_file, list(zip(names, frame_counts)))
    key = cache_key(detector_cfg, cubes_cfg, boxes_file)

    fingerprints = [v.reader.fingerprint for v in videos]
    reason = CubeStore.stale_reason(cache_dir, key, list(zip(names, frame_counts)), fingerprints)
    if reason is not None and reason.startswith("videos changed") and frame_counts != [len(v) for v in videos]:
        frame_counts = [len(v) for v in videos]  # a container's count was not the true one: check those
        reason = CubeStore.stale_reason(cache_dir, key, list(zip(names, frame_counts)), fingerprints)
    if rebuild and reason is None:
        reason = "rebuild asked"
    if keep and reason not in (None, "no cache yet"):
        raise ConfigError(f"{cache_dir}: the cubes a run was trained on would be rebuilt ({reason}); "
                          "use another --out, or --fresh to move that run aside")
    if reason is None:
        store = CubeStore.load(cache_dir)
        log.info("%s: reusing cube cache (%d cubes)", cache_dir, len(store))
        if progress:
            _print_summary(cache_dir, store, reused=True)
        return store
    if reason != "no cache yet":
        log.warning("%s: rebuilding the cube cache: %s", cache_dir, reason)

    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(cache_dir)
    cores = default_threads()
    workers = max(1, min(int(workers) if workers else cores, len(videos)))
    # onnxruntime threads per worker: the config's, else the cores shared out among the workers
    threads = (detector_cfg.get("yolox") or {}).get("threads") or max(1, cores // workers)
    parts_dir = Path(tempfile.mkdtemp(prefix=".parts-", dir=cache_dir))
    started = time.perf_counter()
    try:
        jobs = [_Job(i, _portable(v), detector_cfg, kind, cubes_cfg, parts_dir / f"{i:05d}.npy",
                     None if split_boxes is None else split_boxes[i], threads, workers > 1)
                for i, v in enumerate(videos)]
        results = _run_jobs(jobs, workers, progress, sum(frame_counts), cache_dir)
        results.sort(key=lambda r: r["number"])
        geometry = cube_geometry({"cubes": cubes_cfg})
        manifest = {
            "cache_key": key,
            "detector": detector_cfg.get("name"),
            "config": {"detector": detector_cfg, "cubes": cubes_cfg},
            "boxes_file": str(boxes_file) if boxes_file else None,
            "split": split,
            "videos": [{"name": v.name, "frames": n, "objects": r["objects"], "path": str(v.path),
                        "fingerprint": v.reader.fingerprint}
                       for v, n, r in zip(videos, [r["frames"] for r in results], results)],
            "seqvad_version": seqvad.__version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "timing": {"workers": workers, "wall_seconds": round(time.perf_counter() - started, 3),
                       "detect_seconds": round(sum(r["detect_seconds"] for r in results), 3),
                       "extract_seconds": round(sum(r["extract_seconds"] for r in results), 3),
                       "detect_cpu_seconds": round(sum(r["detect_cpu_seconds"] for r in results), 3),
                       "extract_cpu_seconds": round(sum(r["extract_cpu_seconds"] for r in results), 3)},
        }
        store = CubeStore.write(cache_dir, [j.part for j in jobs], [r["index"] for r in results], manifest,
                                (2 * geometry["window"] + 1, geometry["channels"], geometry["size"], geometry["size"]))
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)

    for entry in store.manifest["videos"]:
        if entry["objects"] == 0:
            log.warning("%s: no objects detected in any of the %d frames of video %s (its frames score 0)",
                        cache_dir, entry["frames"], entry["name"])
    if len(store) == 0:
        log.warning("%s: no objects detected in any video; the cube store is empty", cache_dir)
    if progress:
        _print_summary(cache_dir, store, reused=False)
    return store


def _remove_leftovers(cache_dir: Path) -> None:
    """Part folders and temp files of a build that was killed (one build per folder at a time)."""
    for leftover in cache_dir.glob(".parts-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in cache_dir.glob("*.tmp"):
        leftover.unlink(missing_ok=True)


def _run_jobs(jobs: list[_Job], workers: int, progress: bool, total_frames: int, cache_dir: Path) -> list[dict]:
    # a bar on a terminal, else one line per video with frames/s and ETA (seqvad.progress)
    bar = Progress(total_frames, f"detect {cache_dir.name}", "frame", enabled=progress)
    results = []

    def done(result: dict) -> None:
        bar.update(result["frames"], item=f"video {len(results)}/{len(jobs)} {jobs[result['number']].video.name}")

    try:
        if workers == 1:
            for job in jobs:
                results.append(_process_video(job))
                done(results[-1])
            return results
        context = multiprocessing.get_context("spawn")
        with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            pending = {pool.submit(_process_video, job): job for job in jobs}
            for future in futures.as_completed(pending):
                if future.exception() is not None and not isinstance(
                        future.exception(), (pickle.PicklingError, TypeError, AttributeError)):
                    pool.shutdown(wait=False, cancel_futures=True)  # fail fast, not after every video
                try:
                    result = future.result()
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    # a reader that cannot travel to a worker: do this video here instead
                    job = pending[future]
                    log.warning("%s: video %s cannot be sent to a worker process (%s); processing it here",
                                cache_dir, job.video.name, exc)
                    result = _process_video(job)
                results.append(result)
                done(result)
        return results
    finally:
        bar.close()


def _print_summary(cache_dir: Path, store: CubeStore, reused: bool) -> None:
    s = store.summary()
    timing = store.manifest.get("timing", {})
    speed = ""
    if not reused and timing.get("wall_seconds"):
        speed = f", {s['frames'] / timing['wall_seconds']:.1f} frames/s"
    print(f"{cache_dir}: {'reused' if reused else 'built'} {s['objects']} cubes from {s['frames']} frames of "
          f"{s['videos']} videos ({s['objects_per_frame']:.2f} objects/frame, {s['frames_without_objects']} "
          f"frames without objects), {s['cache_mb']:.1f} MB, detector {s['detector']}{speed}", file=sys.stderr)
