"""`make test-gpu`: the tiny pipeline through the real CLI on CUDA, then `abaw predict`, against the CPU run.

Skipped, not failed, where torch sees no CUDA device. The two runs share
corpus and faces (`faces.device: cpu` in both: detection's CUDA path is
measured by benchmarks/gpu.py, not here) and differ only in the top-level
`device`, so everything from pretraining on runs on the GPU (pretraining and
features in bf16).
"""

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import tiny_params_raw
from tests.stages.conftest import check_predict, make_project
from tests.stages.conftest import run as _run

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

# CUDA kernels sum in another order than the CPU's, and a few epochs on a tiny corpus amplify that: the stated
# tolerance per validation score (CCC or F1, in [0, 1] or [-1, 1]).
TOLERANCE = 0.1


def _scores(project: Path) -> dict[str, float]:
    summary = json.loads((project / "metrics" / "summary.json").read_text())
    return {task: float(summary[task]["value"]) for task in ("va", "expr", "au")}


def test_tiny_pipeline_on_cuda_matches_the_cpu_run(tmp_path: Path):
    runs = {}
    for device in ("cpu", "cuda"):
        params = tiny_params_raw(finetuned=True)
        params["device"] = device
        params["faces"]["device"] = "cpu"
        if device == "cuda":  # bf16 autocast where the sections take it
            params["pretrain"]["precision"] = params["features"]["precision"] = "bf16"
        project = make_project(tmp_path / device, params)
        _run(["dvc", "repro"], project)
        runs[device] = project
    cpu, cuda = _scores(runs["cpu"]), _scores(runs["cuda"])
    assert cpu.keys() == cuda.keys()
    for task in cpu:
        assert abs(cpu[task] - cuda[task]) <= TOLERANCE, (task, cpu[task], cuda[task])
    check_predict(runs["cuda"])
