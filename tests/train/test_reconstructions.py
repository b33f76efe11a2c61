"""plots/mae_reconstructions.png: drawn from a model wherever it was trained."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline_lib.models.mae import MAE, config_by_name
from pipeline_lib.train.reconstructions import save_reconstructions
from tests.device_guard import device_checked

CONFIG = config_by_name("mae_tiny", depth=1, decoder_depth=1, patch_size=14)


def test_figure_has_a_row_per_view_and_a_column_per_face(tmp_path):
    crops = np.random.default_rng(0).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    save_reconstructions(MAE(CONFIG), crops, tmp_path / "r.png", 0.75)
    save_reconstructions(MAE(CONFIG), crops[:0], tmp_path / "none.png", 0.75)  # no face: a figure that says so
    assert Image.open(tmp_path / "r.png").size == (420, 460) and (tmp_path / "none.png").is_file()


def test_crops_go_to_the_models_device(tmp_path):
    """A CUDA-trained MAE got CPU crops here and `abaw pretrain` crashed after training (issue 24)."""
    model = MAE(CONFIG).to("meta")
    crops = np.zeros((2, 112, 112, 3), np.uint8)
    with device_checked(model) as record, pytest.raises(NotImplementedError):  # meta results cannot be drawn
        save_reconstructions(model, crops, tmp_path / "r.png", 0.75)
    assert record.calls and record.problems == []
