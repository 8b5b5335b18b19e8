"""Try seqvad as a careless or hostile user would, and write the table of what it answered.

    python benchmarks/hostile_probes.py --out results/hostile.md

Every probe is one real ``seqvad`` command (a subprocess) in a scratch folder holding a tiny
folder dataset (the fixtures of tests/test_hostile.py: two normal training clips, three test
clips named ``file.avi``, ``allow_pickle.avi`` and ``a,b.avi``) and a trained tiny run. A probe
passes when the exit code is the expected one, the message says what it should in one line
with no traceback, the files it must not touch are byte-identical afterwards (data lost: 0) and
no marker file was written by a crafted pickle (code executed: 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_hostile import TINY, RunsCode, clip, make_root  # noqa: E402  (the tests' own fixtures)
from conftest import write_avi  # noqa: E402


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class Probe:
    name: str
    args: list[str]
    exit: int  # expected exit code
    says: str  # expected in the error line (or in the output, for a success)
    keep: list[Path] = field(default_factory=list)  # folders that must stay byte-identical
    marker: Path | None = None  # written only if a crafted pickle ran
    check: Callable[[], str | None] | None = None  # extra check: a problem, or None
    signal_after: int | None = None  # send this signal once the first scores are out


@dataclass
class Outcome:
    probe: Probe
    code: int
    message: str
    verdict: str
    lost: bool
    executed: bool


def run_probe(probe: Probe, cwd: Path) -> Outcome:
    before = {p: snapshot(p) for p in probe.keep}
    command = [sys.executable, "-m", "seqvad.cli", *probe.args]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if probe.signal_after is not None:
        scores = cwd / probe.args[probe.args.index("--out") + 1] / "scores.csv"
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if scores.is_file() and len(scores.read_text().splitlines()) > 2:
                break
            time.sleep(0.02)
        process.send_signal(probe.signal_after)
    stdout, stderr = process.communicate(timeout=600)
    errors = [line for line in stderr.splitlines() if line.startswith("seqvad: error")]
    notes = [line for line in stdout.splitlines() if line.startswith(("note:", "seqvad:"))]
    last = (stdout.strip() or stderr.strip()).splitlines() or [""]
    message = errors[0] if errors else (notes[0] if notes else last[-1])
    problems = []
    if process.returncode != probe.exit:
        problems.append(f"exit {process.returncode}, expected {probe.exit}")
    if "Traceback" in stderr:
        problems.append("traceback")
    if probe.exit != 0 and len(errors) != 1:
        problems.append(f"{len(errors)} error lines")
    if probe.says not in stdout + stderr:
        problems.append(f"does not say {probe.says!r}")
    lost = any(snapshot(p) != before[p] for p in probe.keep)
    executed = probe.marker is not None and probe.marker.exists()
    extra = probe.check() if probe.check else None
    problems += ["data changed"] * lost + ["code ran"] * executed + ([extra] if extra else [])
    return Outcome(probe, process.returncode, message, "pass" if not problems else "FAIL: " + "; ".join(problems),
                   lost, executed)


def build_workspace(work: Path) -> dict[str, Path]:
    """The dataset, the config, a trained and evaluated run, a model file, crafted files."""
    root = make_root(work / "cam")
    (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    common = ["--config", "tiny.yaml", "--root", "cam", "--workers", "1", "--quiet"]
    for args in (["train", *common, "--out", "run"], ["evaluate", "run", "--no-report"]):
        subprocess.run([sys.executable, "-m", "seqvad.cli", *args], cwd=work, check=True, capture_output=True)
    from seqvad.api import Detector

    Detector.from_run(work / "run", device="cpu").save(work / "model.pt")
    marker = work / "PWNED"
    torch.save({"format": "seqvad-model", "format_version": 2, "x": RunsCode(marker)}, work / "evil_model.pt")
    np.save(work / "evil_boxes.npy", np.array([RunsCode(marker)], dtype=object), allow_pickle=True)
    per_frame = np.empty(60, dtype=object)
    per_frame[:] = [np.array([[4, 20, 16, 40]], np.float32)] * 60
    np.save(work / "boxes_train.npy", per_frame, allow_pickle=True)
    np.save(work / "boxes_test.npy", np.concatenate([per_frame, per_frame[:12]]), allow_pickle=True)
    payload = torch.load(work / "model.pt", weights_only=True)
    payload["config"]["train"]["device"] = "cuda"
    torch.save(payload, work / "gpu_model.pt")
    payload["config"]["model"]["width"] = 8
    torch.save(payload, work / "edited_model.pt")
    del payload["state_dict"]
    torch.save(payload, work / "keyless_model.pt")
    (work / "loop.yaml").write_text(f"base: {work / 'loop.yaml'}\n")
    (work / "empty.csv").write_text("video,start,end\n")
    partial = make_root(work / "partial", labelled=["file"])
    for seed in range(2):  # the same video names, other lengths
        write_avi(work / "other" / "training" / f"normal{seed}.avi", clip(28, seed + 50))
    for folder in ("testing", "labels"):
        shutil.copytree(root / folder, work / "other" / folder)
    for name in ("demo", "poisoned", "blocked", "locked", "stale", "fresh", "readonly"):
        shutil.copytree(work / "run", work / name)
    state = torch.load(work / "poisoned" / "checkpoints" / "phase1.pt", weights_only=True)
    next(v for k, v in state["model"].items() if k.endswith("running_var")).fill_(float("inf"))
    torch.save(state, work / "poisoned" / "checkpoints" / "phase1.pt")
    (work / "blocked" / "scores.csv").unlink()
    (work / "blocked" / "scores.csv").mkdir()
    write_avi(work / "long.avi", clip(1500, 3))
    (work / "out-blocked" / "report.html").mkdir(parents=True)
    return {"root": root, "marker": marker, "partial": partial}


def probes(work: Path, paths: dict[str, Path], live_pid: int, dead_pid: int) -> list[Probe]:
    common = ["--config", "tiny.yaml", "--root", "cam", "--workers", "1", "--quiet"]
    clip_file = "cam/testing/file.avi"
    marker, run = paths["marker"], work / "run"

    def lock(folder: str, pid: int) -> Path:
        (work / folder / ".seqvad.lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                                                 "command": "train", "started": "earlier"}))
        return work / folder

    def finite_checkpoints(folder: str) -> Callable[[], str | None]:
        def check():
            for path in (work / folder / "checkpoints").rglob("*.pt"):
                state = torch.load(path, weights_only=True)["model"]
                if not all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point()):
                    return f"{path.name} holds NaN/inf"
            return None
        return check

    def names_round_trip() -> str | None:
        import csv
        with open(run / "scores.csv", newline="") as handle:
            names = {row["video"] for row in csv.DictReader(handle)}
        return None if names == {"file", "allow_pickle", "a,b"} else f"names read back: {sorted(names)}"

    def outputs_complete(out: str) -> Callable[[], str | None]:
        def check():
            import cv2
            folder = work / out
            if not (folder / "report.html").is_file():
                return "no report.html"
            video = next(folder.glob("annotated.*"), None)
            capture = cv2.VideoCapture(str(video)) if video else None
            ok = capture is not None and capture.read()[0]
            return None if ok else "annotated video not decodable"
        return check

    def moved_aside() -> str | None:
        aside = sorted(work.glob("fresh.old-*"))
        return None if aside and (aside[0] / "checkpoints" / "phase1.pt").is_file() else "old run not kept"

    lock("locked", live_pid)
    lock("stale", dead_pid)
    return [
        Probe("crafted model file (pickle that runs code)", ["detect", "evil_model.pt", clip_file], 2,
              "nothing in it was run", marker=marker),
        Probe("crafted boxes .npy with the ped2 config", ["prepare", "--config", "ped2", "--dataset", "folder",
              "--root", "cam", "--detector", "precomputed", "--boxes", "evil_boxes.npy", "--out", "r1"], 2,
              "seqvad boxes convert", marker=marker),
        Probe("crafted boxes .npy, convert without --allow-pickle", ["boxes", "convert", "evil_boxes.npy", "e.npz"],
              2, "pickled object array", marker=marker),
        Probe("allow_pickle set in the config", ["prepare", *common, "--out", "r2", "--set",
              "detector.allow_pickle=true"], 2, "--allow-pickle"),
        Probe("convert a trusted .npy with --allow-pickle", ["boxes", "convert", "boxes_train.npy",
              "boxes_train.npz", "--allow-pickle"], 0, "boxes_train.npy: unpickling"),
        Probe("boxes .npz named, only the .npy exists", ["prepare", *common, "--detector", "precomputed",
              "--boxes", "boxes_{split}.npz", "--out", "r3"], 2, "seqvad boxes convert"),
        Probe("demo over a run, bad --set train.seed.x=1", ["demo", "--quick", "--out", "demo", "--set",
              "train.seed.x=1"], 2, "train.seed is a value", keep=[work / "demo"]),
        Probe("demo over a run, bad --set schedule=5", ["demo", "--quick", "--out", "demo", "--set", "schedule=5"],
              2, "schedule must be a mapping", keep=[work / "demo"]),
        Probe("typo trian.batch_size", ["demo", "--quick", "--out", "demo", "--set", "trian.batch_size=8"], 2,
              "did you mean train", keep=[work / "demo"]),
        Probe("key in the wrong section train.epochs", ["prepare", *common, "--out", "r4", "--set",
              "train.epochs=3"], 2, "did you mean schedule.epochs"),
        Probe("YAML 1.1 float 1e6 (a string)", ["prepare", *common, "--out", "r5", "--set", "schedule.lr=1e6"], 2,
              "schedule.lr must be a number"),
        Probe("negative batch size", ["prepare", *common, "--out", "r6", "--set", "train.batch_size=-1"], 2,
              "must be >= 1"),
        Probe("unknown device name", ["train", *common, "--out", "r10", "--set", "train.device=gpu"], 2,
              "must be cpu, cuda, cuda:N, mps or auto"),
        Probe("config whose base is itself", ["prepare", "--config", "loop.yaml", "--out", "r7"], 2,
              "refers back to itself"),
        Probe("fresh train into a trained run", ["train", *common, "--out", "run"], 2, "already holds a run",
              keep=[run]),
        Probe("prepare other cube settings into a trained run", ["prepare", *common, "--out", "run", "--set",
              "cubes.size=16"], 2, "other settings", keep=[run]),
        Probe("prepare other videos into a trained run", ["prepare", *common[:3], "other", *common[4:], "--out",
              "run"], 2, "would be rebuilt", keep=[run]),
        Probe("the same with --fresh: old run moved aside", ["prepare", *common, "--out", "fresh", "--set",
              "cubes.size=16", "--fresh"], 0, "moved the previous run", check=moved_aside),
        Probe("second prepare while a live process holds the run", ["prepare", *common, "--out", "locked"], 2,
              "in use by", keep=[work / "locked"]),
        Probe("lock left by a dead process", ["prepare", *common[:-1], "--out", "stale"], 0, "reused",
              check=lambda: "lock kept" if (work / "stale" / ".seqvad.lock").exists() else None),
        Probe("resume with nothing to resume", ["train", *common, "--out", "r8", "--resume"], 2,
              "nothing to resume"),
        Probe("diverging learning rate 1e30", ["train", *common, "--out", "r9", "--set", "schedule.lr=1.0e+30",
              "--set", "schedule.epochs=[3]", "--set", "train.checkpoint_every_steps=1"], 2,
              "holds the last good state", check=finite_checkpoints("r9")),
        Probe("evaluate a checkpoint holding inf", ["evaluate", "poisoned", "--no-report"], 2, "NaN or infinite",
              keep=[work / "poisoned" / "checkpoints"]),
        Probe("videos named file / allow_pickle / a,b", ["evaluate", "run", "--no-report"], 0, "phase1",
              check=names_round_trip),
        Probe("labels for 1 of 3 test videos", ["datasets", "check", "--dataset", "folder", "--root", "partial"],
              2, "no labels for test video(s)"),
        Probe("empty labels CSV", ["datasets", "check", "--dataset", "folder", "--root", "cam", "--labels",
              "empty.csv"], 2, "no label rows"),
        Probe("missing labels CSV", ["datasets", "check", "--dataset", "folder", "--root", "cam", "--labels",
              "nowhere.csv"], 2, "labels file does not exist"),
        Probe("detect stopped by SIGTERM", ["detect", "model.pt", "long.avi", "--out", "out-term", "--quiet",
              "--device", "cpu"], 0, "stopped on request (SIGTERM)", check=outputs_complete("out-term"),
              signal_after=signal.SIGTERM),
        Probe("detect stopped by SIGHUP", ["detect", "model.pt", "long.avi", "--out", "out-hup", "--quiet",
              "--device", "cpu"], 0, "stopped on request (SIGHUP)", check=outputs_complete("out-hup"),
              signal_after=signal.SIGHUP),
        Probe("detect whose report cannot be written", ["detect", "model.pt", clip_file, "--out", "out-blocked",
              "--quiet", "--device", "cpu"], 2, "report.html"),
        Probe("GPU-trained model file on this machine", ["detect", "gpu_model.pt", clip_file, "--out", "out-gpu",
              "--quiet"], 0, "frames"),
        Probe("model file with an edited config (width)", ["detect", "edited_model.pt", clip_file], 2,
              "do not fit"),
        Probe("model file without its weights", ["detect", "keyless_model.pt", clip_file], 2, "missing state_dict"),
        Probe("evaluate where scores.csv cannot be written", ["evaluate", "blocked", "--no-report"], 2,
              "scores.csv", keep=[work / "blocked" / "checkpoints"]),
        Probe("evaluate with a bad scoring value", ["evaluate", "run", "--set", "scoring.median_window=abc"], 2,
              "must be an integer", keep=[run]),
        *([] if torch.cuda.is_available() else [
            Probe("--device cuda on a machine without one", ["detect", "model.pt", clip_file, "--device", "cuda"],
                  2, "no CUDA GPU")]),
        *([] if os.geteuid() == 0 else [
            Probe("evaluate into a read-only run folder", ["evaluate", "readonly", "--no-report"], 2,
                  "not writable", keep=[work / "readonly"])]),
    ]


def markdown(outcomes: list[Outcome], command: str, seconds: float) -> str:
    errors = [o for o in outcomes if o.probe.exit != 0]
    clear = [o for o in errors if o.verdict == "pass"]
    lines = ["# Hostile probes", "",
             f"Made by `{command}` ({seconds:.0f} s): each probe is one `seqvad` command in a scratch folder "
             "(tiny folder dataset and run from `tests/test_hostile.py`); see the script's docstring for the verdict rule.",
             "", f"**{len(outcomes)} tried, {sum(o.verdict == 'pass' for o in outcomes)} pass; "
             f"{len(clear)} of {len(errors)} expected errors are clear one-line errors; "
             f"{sum(o.lost for o in outcomes)} data lost; {sum(o.executed for o in outcomes)} code executed.**", "",
             "| # | probe | command | exit | message | verdict |", "|---|---|---|---|---|---|"]
    for i, o in enumerate(outcomes, 1):
        text = o.message.replace("|", "\\|")
        text = text if len(text) <= 200 else text[:197] + "..."
        args = " ".join(o.probe.args).replace("|", "\\|")
        lines.append(f"| {i} | {o.probe.name} | `seqvad {args}` | {o.code} | {text} | {o.verdict} |")
    if os.geteuid() == 0:
        lines += ["", "Run as root, which writes into read-only folders: the read-only run folder probe is left out "
                      "(tests/test_hostile.py checks it as a normal user, and an unwritable `scores.csv` here)."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/hostile.md")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="seqvad-hostile-"))
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        paths = build_workspace(work)
        if os.geteuid() != 0:
            (work / "readonly").chmod(0o555)
        outcomes = []
        for probe in probes(work, paths, live.pid, dead.pid):
            outcomes.append(run_probe(probe, work))
            print(f"{outcomes[-1].verdict:>6}  exit {outcomes[-1].code}  {probe.name}: {outcomes[-1].message[:120]}")
    finally:
        live.kill()
        live.wait()
        (work / "readonly").chmod(0o755) if (work / "readonly").exists() else None
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    command = "python benchmarks/hostile_probes.py" + ("" if args.out == "results/hostile.md" else f" --out {args.out}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(markdown(outcomes, command, time.perf_counter() - started))
    print(f"wrote {args.out}")
    return 0 if all(o.verdict == "pass" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
