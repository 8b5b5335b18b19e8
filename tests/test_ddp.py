"""DistributedDataParallel on CPU: two gloo processes started by torchrun train a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.distributed as dist

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                                reason="this torch build has no gloo backend")

# Each rank trains, then saves its own copy of the weights, so the test can compare the ranks.
WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path

    import numpy as np
    import torch

    from seqvad.train import Trainer

    run = Path(sys.argv[1])
    config = {
        "model": {"blocks": 2, "width": 4, "latent": 8, "projection": 8, "hidden": 16},
        "schedule": {"order": "pre,rec,cls", "epochs": [1, 1, 1], "lr": 1e-3},
        "train": {"batch_size": 16, "seed": 0, "checkpoint_minutes": 0},
    }
    cubes = np.random.default_rng(0).integers(0, 256, size=(66, 9, 1, 32, 32), dtype=np.uint8)
    trainer = Trainer(config, cubes, run / "run", progress=False)
    rank = trainer.ddp.rank
    summary = trainer.fit()
    state = {"model": trainer.runner.model.state_dict(), "summary": summary, "rank": rank}
    torch.save(state, run / f"rank{rank}.pt")
""")


def test_two_cpu_ranks_end_with_identical_weights(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # 2 ranks on a 2-core machine
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
               "--nproc_per_node", "2", str(script), str(tmp_path)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail("torchrun with 2 CPU processes did not finish within 180 s")
    assert done.returncode == 0, done.stderr[-3000:]

    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0["summary"]["world_size"] == 2
    # 66 cubes -> 33 per rank; per-rank batch 16 / 2 = 8 -> 4 steps (the 1-cube tail is dropped).
    assert rank0["summary"]["global_steps"] == rank1["summary"]["global_steps"] == 12
    for key, value in rank0["model"].items():
        assert torch.equal(value, rank1["model"][key]), key  # parameters and BatchNorm buffers

    # Rank 0 wrote the run folder; what it saved is what the ranks hold.
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in rank0["model"].items():
        assert torch.equal(value, last["model"][key]), key
    rows = json.loads((tmp_path / "run" / "log.json").read_text())
    assert [row["phase"] for row in rows] == [1, 2, 3]
    assert not list((tmp_path / "run").glob("**/*.tmp"))  # no half-written files left
