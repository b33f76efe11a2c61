"""DDP under torchrun, 2 processes on CPU (gloo), against one process: MAE pretraining follows the same loss
curve for the same global batch with the ranks' weights in sync, `abaw pretrain` and `abaw temporal` write one
set of outputs (rank 0's) that loads; the sampler and the helpers behave exactly as documented.

Run as a script (`python -m torch.distributed.run ... tests/train/test_ddp.py OUT FACES SETTINGS`) this module
is the launcher of the library-level run: every rank trains and writes what it saw to OUT/rank<r>.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline_lib.config import PretrainSettings
from pipeline_lib.faces.store import FaceTrack, write_faces
from pipeline_lib.models.mae import load_mae
from pipeline_lib.train import distributed
from pipeline_lib.train.loop import fit
from pipeline_lib.train.pretrain import pretrain_mae, sharded_loader
from tests.train.test_pretrain import _faces

ROOT = Path(__file__).resolve().parents[2]
ABAW = Path(sys.executable).parent / "abaw"

# 70 faces, 3 epochs; per-process batch 8 on 2 ranks = global batch 16 = one process's batch.
SETTINGS = PretrainSettings(epochs=3, batch_size=16, lr=2e-3, warmup_epochs=1, frame_stride=1, color_jitter=0.0,
                            crop_scale_min=0.9, threads=1)
# Random masks and augmentations differ between 1 and 2 processes (each rank draws its own), so the curves
# match within the spread those draws cause. Measured on these faces (seeds 0-4, 3 epochs): 2 processes vs 1
# differ by at most 0.0054 in an epoch, as do two 1-process runs with other draws (0.0054); each rank seeing
# all the data (a missing sampler shard) differs by 0.059-0.064 at epoch 1 and 0.22-0.24 at epoch 3. Skipping
# the gradient averaging stays within the spread (0.0058): the identical weights on both ranks catch that.
TOLERANCE = 0.02


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """Two face stores, 35 usable frames each (every 10th absent, one filled)."""
    root = tmp_path_factory.mktemp("faces")
    for v in range(2):
        crops, present = _faces(40, v), np.ones(40, bool)
        present[::10] = False
        crops[~present] = 0
        filled = np.zeros(40, bool)
        filled[5] = True
        write_faces(root / f"v{v}.h5", FaceTrack(crops, present, filled, np.full((40, 4), np.nan, np.float32),
                                                  np.full((40, 5, 2), np.nan, np.float32),
                                                  present.astype(np.float32)), {})
    return root


def _digest(model: torch.nn.Module) -> str:
    """A hash of every tensor's bytes: equal only for bit-identical weights."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _torchrun(args: list[str], cwd: Path) -> str:
    """Run 2 processes under torchrun (a free port of its own), one torch thread each; fail with their output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"torchrun failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return done.stdout


def _launch(out: Path, faces: Path, settings_json: str) -> None:
    """One rank of the library-level run (this file as torchrun's script)."""
    steps: list[float] = []
    model, result = pretrain_mae(sorted(faces.glob("*.h5")), PretrainSettings.model_validate_json(settings_json),
                                 out / "mae", seed=0, on_step=lambda step, loss, lr: steps.append(loss))
    report = {"world": distributed.world_size(), "losses": result.epoch_losses, "steps_logged": len(steps),
              "weights": _digest(model)}
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps(report))
    distributed.leave()


def test_two_processes_follow_one_process_loss_curve_with_weights_in_sync(tmp_path, faces):
    steps: list[float] = []
    _, one = pretrain_mae(sorted(faces.glob("*.h5")), SETTINGS, tmp_path / "one", seed=0,
                          on_step=lambda step, loss, lr: steps.append(loss))
    half = SETTINGS.model_copy(update={"batch_size": SETTINGS.batch_size // 2})
    _torchrun([__file__, str(tmp_path), str(faces), half.model_dump_json()], tmp_path)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["losses"] == ranks[1]["losses"]  # all-reduced: every rank reports the global curve
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged: the replicas never drift apart
    assert len(steps) == 3 * 4 and ranks[0]["steps_logged"] == len(steps)  # 70 // 16 = 4 global batches an epoch
    assert ranks[1]["steps_logged"] == 0  # on_step runs on rank 0 only
    np.testing.assert_allclose(ranks[0]["losses"], one.epoch_losses, rtol=0, atol=TOLERANCE)
    assert one.epoch_losses[-1] < 0.9 * one.epoch_losses[0]  # a curve that moves, not a flat line

    assert sorted(p.name for p in (tmp_path / "mae").iterdir()) == ["last.pt", "mae.pt"]
    loaded, meta = load_mae(tmp_path / "mae" / "mae.pt")  # rank 0's file, weights-only
    assert _digest(loaded) == ranks[0]["weights"] and meta["images"] == 70


def test_the_ranks_batches_together_are_one_process_batches():
    data = list(range(70))
    one = sharded_loader(data, 16, rank=0, world=1, seed=3)  # type: ignore[arg-type]
    two = [sharded_loader(data, 8, rank=r, world=2, seed=3) for r in range(2)]  # type: ignore[arg-type]
    for epoch in range(3):
        for loader in (one, *two):
            loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        together = [sorted(a.tolist() + b.tolist()) for a, b in zip(*two, strict=True)]
        assert together == [sorted(batch.tolist()) for batch in one] and len(together) == 70 // 16
        seen = [i for batch in together for i in batch]
        assert len(seen) == len(set(seen)) == 64  # disjoint shares; the last partial global batch dropped
    few = [sharded_loader(list(range(5)), 8, rank=r, world=2, seed=0) for r in range(2)]  # type: ignore[arg-type]
    assert [len(list(loader)) for loader in few] == [1, 1]  # no full global batch: kept, padded to equal shares
    assert sorted(set(next(iter(few[0])).tolist()) | set(next(iter(few[1])).tolist())) == [0, 1, 2, 3, 4]


def test_one_process_helpers_and_rank_before_joining(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.join("cpu") == (0, 1) and not torch.distributed.is_initialized()
    assert distributed.is_main() and distributed.mean_over_ranks(torch.tensor(2.5)) == 2.5
    assert distributed.local_device("cuda") == torch.device("cuda")  # no torchrun: no rank's own GPU
    distributed.leave()  # nothing joined: a no-op
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not distributed.is_main() and distributed.rank() == 1  # right before `join`, from torchrun's env
    assert distributed.local_device("cuda") == torch.device("cuda", 1)
    assert distributed.local_device("cpu") == torch.device("cpu")


class _EpochSampler:
    """Records set_epoch, as a DistributedSampler reshuffles on it."""

    def __init__(self) -> None:
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


class _Loader(list):
    """A list of batches with a sampler attribute, as a DataLoader has."""

    def __init__(self, batches: list[dict[str, torch.Tensor]]) -> None:
        super().__init__(batches)
        self.sampler = _EpochSampler()


def test_fit_sets_the_sampler_epoch_and_keeps_plain_loaders_working():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    batches = [{"x": torch.randn(4, 2), "y": torch.randn(4, 1)} for _ in range(3)]

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])

    loader = _Loader(batches)
    fitted = fit(model, loader, loss, lambda: {"score": 0.0}, "score", epochs=3, lr=1e-2, weight_decay=0.0)
    assert loader.sampler.epochs == [0, 1, 2] and len(fitted.train_loss) == 3
    plain = fit(model, batches, loss, lambda: {"score": 0.0}, "score", epochs=2, lr=1e-2, weight_decay=0.0)
    assert len(plain.train_loss) == 2  # a list of batches (the compound stage's): no sampler, no set_epoch


def test_abaw_pretrain_under_torchrun_writes_one_set_of_outputs(tmp_path, faces, tiny_params_dict):
    tiny_params_dict["pretrain"].update(epochs=2, batch_size=8, frame_stride=1, samples=2, threads=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    out = _torchrun(["--no-python", str(ABAW), "pretrain", "--params", str(params), "--faces", str(faces),
                     "--out", str(tmp_path / "mae"), "--live-dir", str(tmp_path / "live"),
                     "--plot", str(tmp_path / "plots" / "recon.png")], tmp_path)
    lines = out.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 2  # printed by rank 0 only
    summary_lines = [line for line in lines if line.startswith("pretrain: 70 faces, 2 epoch(s) run")]
    assert len(summary_lines) == 1 and summary_lines[0].endswith("(2 processes)")
    assert sorted(p.name for p in (tmp_path / "mae").iterdir()) == ["last.pt", "mae.pt"]
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["recon.png"]
    steps = (tmp_path / "live" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    assert len(steps) == 1 + 2 * (70 // 16)  # header + one row per global step, logged once
    summary = json.loads((tmp_path / "live" / "metrics.json").read_text())
    assert summary["images"] == 70 and summary["epochs"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live", "mae", "params.yaml", "plots"]
    model, meta = load_mae(tmp_path / "mae" / "mae.pt")
    assert meta["settings"]["batch_size"] == 8 and not model.training


def test_abaw_temporal_under_torchrun_writes_one_set_of_outputs(tmp_path, tiny_params_dict):
    from pipeline_lib.artifacts.predictions import read_predictions
    from pipeline_lib.models.task_network import load_task_network
    from tests.train.conftest import build_corpus

    raw, features = build_corpus(tmp_path / "corpus")
    tiny_params_dict["temporal"]["common"].update(epochs=2, hidden=16, layers=1, heads=2, threads=1, batch_size=4)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict))
    out = _torchrun(["--no-python", str(ABAW), "temporal", "--task", "expr", "--params", str(params), "--raw",
                     str(raw), "--features", str(features), "--models", str(tmp_path / "models"),
                     "--predictions", str(tmp_path / "pred"), "--report", str(tmp_path / "metrics")], tmp_path)
    summary_lines = [line for line in out.splitlines() if line.startswith("temporal expr (transformer")]
    assert len(summary_lines) == 1 and summary_lines[0].endswith("(2 processes)")
    assert sum(line.startswith("expr temporal epoch") for line in out.splitlines()) == 2
    assert sorted(p.name for p in (tmp_path / "models" / "expr").iterdir()) == ["baseline.pt", "temporal.pt"]
    assert sorted(p.name for p in (tmp_path / "pred").iterdir()) == ["expr.h5"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["expr", "expr.json"]
    metrics = json.loads((tmp_path / "metrics" / "expr.json").read_text())
    for model in ("temporal", "baseline"):  # rank 0's complete metrics: its predictions reproduce its selection
        assert len(metrics[model]["curve"]) == 2
        assert metrics[model]["val_from_predictions"] == metrics[model]["f1_macro"]
    network, meta = load_task_network(tmp_path / "models" / "expr" / "temporal.pt")
    assert network.task == "expr" and meta["best_epoch"] in (1, 2)
    videos, _ = read_predictions(tmp_path / "pred" / "expr.h5")
    assert set(videos) == {"tr1", "tr2", "tr3", "va1", "te1"}


if __name__ == "__main__":
    torch.set_num_threads(1)
    _launch(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])


NAN_ON_ONE_RANK = """
import sys
import torch
from pipeline_lib.train import distributed
from pipeline_lib.train.loop import LossNotFinite, fit

distributed.join("cpu")
rank = distributed.rank()
torch.manual_seed(0)
model = torch.nn.Linear(2, 1)
ddp = torch.nn.parallel.DistributedDataParallel(model)
batches = [torch.randn(4, 2) for _ in range(3)]
calls = [0]

def batch_loss(x):
    calls[0] += 1
    loss = ddp(x).pow(2).mean()
    return loss * float("nan") if rank == 1 and calls[0] == 2 else loss

try:
    fit(model, batches, batch_loss, None, "score", epochs=2, lr=1e-2, name="temporal va")
except LossNotFinite as exc:
    print(f"rank {rank}: {exc}", flush=True)
    sys.exit(3)
"""


def test_a_nan_loss_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    script = tmp_path / "nan_rank.py"
    script.write_text(NAN_ON_ONE_RANK)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    # Deciding on its own loss, rank 1 alone would stop; rank 0 would wait in backward's all-reduce until torchrun
    # killed it, without a word.
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    for rank in (0, 1):
        assert f"rank {rank}: temporal va: the training loss is nan at epoch 1, step 2 of 3;" in done.stdout, (
            done.stdout + done.stderr[-3000:])
