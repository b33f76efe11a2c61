"""The trained chain on one video file: faces -> frame features -> temporal models -> fusion -> compound.

Every model is rebuilt from its weights-only checkpoint; each stage's inputs
are assembled exactly as that stage saw them in training (the sources named
in the checkpoints' metadata, in their order, float16 as in the store), so a
video outside the corpus gets the same treatment as one inside it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline_lib.config import Params
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import BASIC_KEYS, CE_NAMES, EXPR_NAMES
from pipeline_lib.faces.extract import extract_faces
from pipeline_lib.faces.mesh import FaceMesh, frame_points, store_blocks
from pipeline_lib.faces.runner import extract_settings
from pipeline_lib.faces.store import read_track_info
from pipeline_lib.features.encode import EXTRACTORS, build_extractor, extractor_checkpoint, extractor_features
from pipeline_lib.features.mesh import MESH, mesh_store_features
from pipeline_lib.features.normalize import center_per_video
from pipeline_lib.features.windows import VideoArrays
from pipeline_lib.metrics import smooth_va
from pipeline_lib.models.compound import load_compound_model, zero_shot_probabilities, zero_shot_scores
from pipeline_lib.models.fusion import load_fusion_model
from pipeline_lib.models.task_network import load_task_network
from pipeline_lib.predict.render import FramePredictions
from pipeline_lib.train.compound import predict_compound
from pipeline_lib.train.fusion import predict_fusion
from pipeline_lib.train.fusion_data import prediction_source
from pipeline_lib.train.sliding import predict_videos

__all__ = ["ChainResult", "predict_video", "probe_fps", "summary"]


@dataclass(frozen=True)
class ChainResult:
    predictions: FramePredictions
    frames_decoded: int
    faces: int
    warnings: list[str]


def _arrays(name: str, features: np.ndarray, valid: np.ndarray) -> VideoArrays:
    n = len(valid)
    return VideoArrays(name, features, valid, np.zeros((n, 1), np.float32), np.zeros((n, 1), bool))


def probe_fps(video: Path) -> float:
    """The video's frame rate (25 when the container does not say); DataError when it is not a readable video."""
    import av

    if not video.is_file():
        raise DataError(video, "no such file")
    try:
        with av.open(str(video)) as container:
            if not container.streams.video:
                raise DataError(video, "not a video: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate
            next(container.decode(stream))
    except (av.error.FFmpegError, OSError, ValueError, StopIteration) as exc:
        detail = "no decodable frame" if isinstance(exc, StopIteration) else f"{type(exc).__name__}: {exc}"
        raise DataError(video, f"not a readable video ({detail})") from None
    return float(rate) if rate else 25.0


def predict_video(video: Path, params: Params, models_dir: Path, *, mesh: bool = False,
                  on_step: Callable[[str], None] = lambda step: None) -> ChainResult:
    """Run every trained model on `video`; raises DataError on an unreadable or non-video file.

    `mesh`: also landmark every face with MediaPipe's Face Landmarker, for the overlay (`predictions.mesh`).
    """
    fps = probe_fps(video)  # before loading any model: a bad path fails at once
    from pipeline_lib.faces.detect import FaceDetector  # MTCNN weights load only when a video is to be read

    warnings: list[str] = []
    paths = {"mae": models_dir / "mae" / "mae.pt", "fusion": models_dir / "fusion" / "fusion.pt",
             "compound": models_dir / "compound" / "compound.pt"}
    fusion, fusion_meta = load_fusion_model(paths["fusion"])
    compound, compound_meta = load_compound_model(paths["compound"])
    networks = {t: load_task_network(models_dir / "temporal" / t / "temporal.pt") for t in BASIC_KEYS}
    s = params.faces
    with tempfile.TemporaryDirectory(prefix="abaw-predict-") as tmp:
        store = Path(tmp) / "faces.h5"
        on_step("faces")
        detector = FaceDetector(device=s.device, max_side=s.max_side, min_face_fraction=s.min_face_fraction)
        _, report = extract_faces(video, [(None, store)], detector, [{"source": video.name}], extract_settings(s))
        if report.frames_decoded == 0:
            raise DataError(video, f"not a readable video ({report.error or 'no frame decoded'})")
        if report.error:
            warnings.append(report.error)
        track = read_track_info(store)
        on_step("features")
        needed = ({str(meta["extractor"]) for _, meta in networks.values()}
                  | set(fusion_meta["sources"]) | set(compound_meta["sources"])) & set(EXTRACTORS.names())
        frames: dict[str, np.ndarray] = {}
        valid = np.asarray(track["present"], bool)
        landmarked = None  # with --mesh, one landmarker pass feeds both the `mesh` features and the overlay
        if mesh:
            with FaceMesh() as landmarker:
                landmarked = list(store_blocks(store, landmarker))
        for name in sorted(needed):  # `finetuned_<task>` reads <models>/finetuned/<task>.pt
            if name == MESH and landmarked is not None:
                features, valid = mesh_store_features(store, landmarked)
            else:
                checkpoint = extractor_checkpoint(name, paths["mae"], models_dir / "finetuned")
                features, valid = extractor_features(build_extractor(name, checkpoint, params.seed), store,
                                                     params.features.batch_size, params.features.device)
            # As stored in the feature store, then centred as every model downstream saw its features.
            frames[name] = center_per_video(features.astype(np.float16), valid)
        points = None if landmarked is None else frame_points(store, landmarked)
    on_step("temporal")
    hidden: dict[str, np.ndarray] = {}
    outputs: dict[str, np.ndarray] = {}
    for task, (network, meta) in networks.items():
        [(o, h)] = predict_videos(network, [_arrays(video.stem, frames[str(meta["extractor"])], valid)],
                                  int(meta["window"]), params.temporal.common.device)
        hidden[task], outputs[task] = h.astype(np.float16), o
    on_step("fusion")
    # The sources fusion trained on, named as in its metadata; "predictions" only for a residual model.
    sources = {**frames, **hidden, "predictions": prediction_source(outputs)}
    fused_in = np.concatenate([sources[s] for s in fusion_meta["sources"]], axis=1)
    [fused] = predict_fusion(fusion, [_arrays(video.stem, fused_in, valid)], int(fusion_meta["window"]),
                             params.fusion.device)
    on_step("compound")
    zero_shot = zero_shot_scores(torch.from_numpy(fused["expr"].astype(np.float32))).numpy()
    sources.update(fusion_expr=fused["hidden"].astype(np.float16), zero_shot=zero_shot.astype(np.float16))
    if compound is None:  # the compound stage had no CE data: its predictions are the zero-shot scores
        ce = {"ce": zero_shot_probabilities(zero_shot)}
    else:
        compound_in = np.concatenate([sources[s] for s in compound_meta["sources"]], axis=1)
        [ce] = predict_compound(compound, [_arrays(video.stem, compound_in, valid)], int(compound_meta["window"]),
                                params.compound.device)
    va = np.clip(smooth_va(fused["va"], params.evaluate.va_smoothing, valid), -1, 1)
    boxes = np.where(valid[:, None], np.asarray(track["boxes"], np.float32), np.nan).astype(np.float32)
    predictions = FramePredictions(fps=fps, present=valid, boxes=boxes, va=va.astype(np.float32),
                                   expr=fused["expr"].astype(np.float32), au=fused["au"].astype(np.float32),
                                   ce=ce["ce"].astype(np.float32), mesh=points)
    return ChainResult(predictions, report.frames_decoded, int(valid.sum()), warnings)


def summary(result: ChainResult) -> dict[str, Any]:
    """A few numbers for the command's closing lines (None where no frame has a face)."""
    p = result.predictions
    face = p.present
    out: dict[str, Any] = {"frames": p.n_frames, "faces": int(face.sum()), "valence_mean": None,
                           "arousal_mean": None, "top_expression": None, "top_compound": None}
    if face.any():
        out.update(valence_mean=round(float(p.va[face, 0].mean()), 3),
                   arousal_mean=round(float(p.va[face, 1].mean()), 3),
                   top_expression=EXPR_NAMES[int(np.bincount(p.expr[face].argmax(1)).argmax())],
                   top_compound=CE_NAMES[int(np.bincount(p.ce[face].argmax(1)).argmax())])
    return out
