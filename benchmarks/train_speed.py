"""Training speed: cubes/s per curriculum phase, achieved vs peak GFLOP/s, projected Ped2 time.

    python benchmarks/train_speed.py                       # CPU, torch threads = cores
    python benchmarks/train_speed.py --device cuda --out results/train_speed_cuda.json

What it measures, on random uint8 cubes (N=4096, 1 channel, 9x32x32) and the default model
(``config.DEFAULTS``):

* per phase of the default schedule (phase 1 = pre, 2 = pre+rec, 3 = pre+rec+cls): the median
  wall time of one real ``Trainer.train_step`` (uint8->float, forward of all active tasks,
  backward, Adam) at batch size ``train.batch_size``, and the cubes/s that gives;
* FLOPs of one step (forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode``:
  convolutions and matrix products only, so normalisation/elementwise work is not counted) and
  the achieved GFLOP/s;
* the peak: a large fp32 convolution (conv2d 64->64, 3x3, batch 64 of 64x64, 2*N*Cout*H*W*Cin*9
  FLOPs forward) timed in the same run at the same thread count, two ways: ``peak`` forward only in
  the default memory format (as measured since the first version), and ``peak_train`` forward and
  backward (3x the forward FLOPs: input and weight gradients) in channels-last, the memory format
  the model trains in: what a training step does, so ``fraction_of_peak_train`` is the figure the
  throughput target is stated against;
* with ``--widths``: the same per-phase measurement for other model widths (latent = 4 x width, the
  default ratio), measured, not projected;
* the projected wall time of the default Ped2 curriculum: ``epochs[p] * 30000 / cubes_per_s[p]``
  summed over the phases (the team target is 30 minutes on 2 cores).

Timings are medians over ``--repeats`` repetitions because the machine may be shared; the load
average before and after is written beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from seqvad.config import load_config
from seqvad.train import Trainer

REPO = Path(__file__).resolve().parents[1]
PED2_TRAINING_CUBES = 30_000
TARGET_MINUTES = 30.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (default: number of cores)")
    parser.add_argument("--cubes", type=int, default=4096, help="random cubes in the pool")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per phase (median)")
    parser.add_argument("--channels-last", action="store_true",
                        help="convert the model to channels_last memory format")
    parser.add_argument("--config", default="default",
                        help="dataset config whose model, tasks, schedule and batch size are timed (default: the defaults)")
    parser.add_argument("--widths", default="", help="also measure these model widths, e.g. 16,32")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "train_speed.json")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(run, repeats: int, device: torch.device) -> tuple[float, list[float]]:
    """Median wall time of ``run()`` over ``repeats`` calls, after one untimed warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        run()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), [round(t, 4) for t in times]


def peak_conv_gflops(device: torch.device, repeats: int) -> dict:
    batch, channels, size = 64, 64, 64
    x = torch.randn(batch, channels, size, size, device=device)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device)
    flops = 2 * batch * channels * size * size * channels * 9
    with torch.no_grad():
        seconds, times = median_seconds(lambda: conv(x), repeats, device)
    return {"op": "conv2d fp32 64->64 3x3, input 64x64x64x64, forward", "gflop": flops / 1e9,
            "seconds_median": round(seconds, 5), "seconds_all": times,
            "gflops_per_s": round(flops / seconds / 1e9, 2)}


def peak_train_gflops(device: torch.device, repeats: int) -> dict:
    """The same convolution as a training step runs it: channels-last, forward and backward (the
    input's and the weight's gradients, 2x the forward FLOPs)."""
    batch, channels, size = 64, 64, 64
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False).to(device, memory_format=torch.channels_last)
    flops = 3 * 2 * batch * channels * size * size * channels * 9

    def step():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        conv(x).sum().backward()

    seconds, times = median_seconds(step, repeats, device)
    return {"op": "conv2d fp32 64->64 3x3, input 64x64x64x64, channels-last, forward + backward",
            "gflop": flops / 1e9, "seconds_median": round(seconds, 5), "seconds_all": times,
            "gflops_per_s": round(flops / seconds / 1e9, 2)}


def step_flops(trainer: Trainer, batch: torch.Tensor, weights: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(batch, weights)
    return counter.get_total_flops()


def measure_phases(trainer: Trainer, repeats: int, batch_size: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    n = len(trainer.data)

    def random_batch() -> torch.Tensor:
        return torch.randint(n, (batch_size,), generator=generator)

    results = []
    for index, phase in enumerate(trainer.schedule.phases):
        weights = trainer.phase_weights(phase)
        flops = step_flops(trainer, random_batch(), weights)
        seconds, times = median_seconds(lambda: trainer.train_step(random_batch(), weights),
                                        repeats, trainer.device)
        results.append({
            "phase": index + 1, "name": phase.name, "tasks": list(weights), "epochs": phase.epochs,
            "step_seconds_median": round(seconds, 4), "step_seconds_all": times,
            "cubes_per_s": round(batch_size / seconds, 1),
            "gflop_per_step": round(flops / 1e9, 2), "gflops_per_s": round(flops / seconds / 1e9, 2),
        })
        print(f"phase {index + 1} ({','.join(weights)}): {seconds:.3f} s/step, "
              f"{batch_size / seconds:.0f} cubes/s, {flops / seconds / 1e9:.1f} GFLOP/s", flush=True)
    return results


def flops_per_cube(model_cfg: dict, tasks_cfg: dict, weights: dict) -> float:
    """Forward+backward FLOPs per cube of one phase for a model config (counted on 8 cubes)."""
    from seqvad.model import build_model
    from seqvad.tasks import build_tasks
    from seqvad.train import TaskRunner

    runner = TaskRunner(build_model(model_cfg, 1), build_tasks(tasks_cfg))
    cubes = torch.rand(8, 9, 1, 32, 32) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        runner(cubes, weights)["loss"].backward()
    return counter.get_total_flops() / len(cubes)


def width_sweep(config: dict, trainer: Trainer, phases: list[dict], widths=(8, 16, 32)) -> dict:
    """What the Ped2 curriculum would cost at other widths (latent = 2 x width, the default
    ratio), projected at the GFLOP/s each phase achieved here: an optimistic bound, since
    smaller convolutions run further from peak."""
    rows = []
    for width in widths:
        model_cfg = {**config["model"], "width": width, "latent": 2 * width}
        minutes = 0.0
        gflop_per_cube = []
        for phase, measured in zip(trainer.schedule.phases, phases):
            flops = flops_per_cube(model_cfg, config["tasks"], trainer.phase_weights(phase))
            gflop_per_cube.append(round(flops / 1e9, 3))
            minutes += phase.epochs * PED2_TRAINING_CUBES * flops / (measured["gflops_per_s"] * 1e9) / 60
        rows.append({"width": width, "latent": 2 * width, "gflop_per_cube_by_phase": gflop_per_cube,
                     "projected_ped2_minutes": round(minutes, 1)})
    return {"note": "FLOP counts per cube at other widths, projected at the GFLOP/s measured "
                    "above for each phase (optimistic for small widths)", "rows": rows}


def project_ped2(phases: list[dict]) -> dict:
    per_phase = [phase["epochs"] * PED2_TRAINING_CUBES / phase["cubes_per_s"] for phase in phases]
    total_minutes = sum(per_phase) / 60
    return {"training_cubes": PED2_TRAINING_CUBES, "epochs": [p["epochs"] for p in phases],
            "phase_minutes": [round(s / 60, 1) for s in per_phase],
            "total_minutes": round(total_minutes, 1), "target_minutes": TARGET_MINUTES,
            "meets_target": total_minutes <= TARGET_MINUTES}


def git_commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        return None
    return done.stdout.strip() + ("+uncommitted changes" if dirty.stdout.strip() else "")


def machine(device: torch.device, threads: int) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": threads,
            "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {"train": {"device": args.device, "checkpoint_minutes": 0}}
    config = load_config(args.config, overrides) if args.config != "default" else load_config(overrides)
    cubes = np.random.default_rng(0).integers(0, 256, size=(args.cubes, 9, 1, 32, 32), dtype=np.uint8)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as run_dir:  # the trainer is only stepped, never fit()
        trainer = Trainer(config, cubes, run_dir, progress=False)
        if args.channels_last:
            trainer.runner.to(memory_format=torch.channels_last)
        peak = peak_conv_gflops(trainer.device, args.repeats)
        peak_train = peak_train_gflops(trainer.device, args.repeats)
        print(f"peak conv: {peak['gflops_per_s']} GFLOP/s forward, {peak_train['gflops_per_s']} GFLOP/s "
              "forward+backward channels-last", flush=True)
        phases = measure_phases(trainer, args.repeats, config["train"]["batch_size"])
        sweep = width_sweep(config, trainer, phases)
    measured_widths = []
    for width in [int(w) for w in args.widths.split(",") if w.strip()]:
        wide = {**config, "model": {**config["model"], "width": width, "latent": 4 * width}}
        print(f"width {width}, latent {4 * width}:", flush=True)
        with tempfile.TemporaryDirectory() as run_dir:
            rows = measure_phases(Trainer(wide, cubes, run_dir, progress=False), args.repeats,
                                  config["train"]["batch_size"])
        for row in rows:
            row["fraction_of_peak_train"] = round(row["gflops_per_s"] / peak_train["gflops_per_s"], 3)
        measured_widths.append({"width": width, "latent": 4 * width, "phases": rows,
                                "projection_ped2": project_ped2(rows)})
    load_after = os.getloadavg()

    for phase in phases:
        phase["fraction_of_peak"] = round(phase["gflops_per_s"] / peak["gflops_per_s"], 3)
        phase["fraction_of_peak_train"] = round(phase["gflops_per_s"] / peak_train["gflops_per_s"], 3)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_commit": git_commit(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(trainer.device, args.threads),
        "config": {key: config[key] for key in ("model", "tasks", "schedule")}
        | {"train": {"batch_size": config["train"]["batch_size"]}, "cubes": args.cubes,
           "channels_last": args.channels_last},
        "notes": (f"Timings are medians of {args.repeats} steps after one warm-up step; the machine "
                  "may be shared with other processes (load average before/after below), so the "
                  "numbers are upper bounds on the time an idle machine needs. FLOPs count "
                  "convolutions and matrix products of forward+backward only."),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "peak": peak,
        "peak_train": peak_train,
        "phases": phases,
        "projection_ped2": project_ped2(phases),
        "width_sweep": sweep,
        "measured_widths": measured_widths,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"projected default Ped2 curriculum: {result['projection_ped2']['total_minutes']} min "
          f"(target {TARGET_MINUTES:.0f}); wrote {args.out}")


if __name__ == "__main__":
    main()
