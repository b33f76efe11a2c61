"""Frame features: every face frame encoded once by a frozen encoder, cached in the zarr feature store.

Everything downstream trains on this cache, so a temporal-model ablation
costs minutes, not hours. Extractors are a small registry (`mae`, `random`,
and `finetuned_<task>`: the MAE fine-tuned frame-wise on that task by
`abaw finetune`), plus `landmarks`, the face-shape geometry of the face
stage's 5 points (`features.geometry`, no network); a video is skipped when
its array exists with the provenance this run would write (encoder
checkpoint hash or geometry version, the face store it came from,
settings), and rebuilt, never mixed, when anything differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Final

import h5py
import numpy as np
import torch

from pipeline_lib import __version__
from pipeline_lib.data.errors import DataError
from pipeline_lib.data.labels import BASIC_KEYS
from pipeline_lib.faces.mesh import landmarker_model
from pipeline_lib.faces.store import StoredCrops, open_face_store
from pipeline_lib.features.geometry import GEOMETRY_VERSION, LANDMARKS, landmark_store_features
from pipeline_lib.features.geometry import WIDTH as LANDMARKS_WIDTH
from pipeline_lib.features.mesh import MESH, MESH_COLUMNS, MESH_VERSION, read_mesh_store
from pipeline_lib.features.store import FeatureStore
from pipeline_lib.files import file_sha256
from pipeline_lib.heap import release_freed_memory
from pipeline_lib.models.mae import MAE, load_mae, normalize
from pipeline_lib.models.registry import Registry
from pipeline_lib.workers import stop_now

__all__ = ["EXTRACTORS", "FINETUNED", "GEOMETRIC", "StoreGeometry", "VideoFeatures", "build_extractor",
           "encode_crops", "encode_store", "extract_features", "extractor_checkpoint", "extractor_features",
           "register_extractor", "weights_digest"]


@dataclass(frozen=True)
class StoreGeometry:
    """A network-free extractor: reads a face store itself (its points, or its crops through a landmarker)."""

    version: str  # provenance of its arrays: bump when the features change
    width: int  # D
    read: Callable[[Path], tuple[np.ndarray, np.ndarray]]  # face store -> (features (T, D) float32, valid (T,))
    # Worth worker processes (`workers`; the landmarker takes ~7 ms a crop on one core); `read` must then pickle
    # (a top-level function, or a partial of one) from a module that does not import torch.
    heavy: bool = False


Builder = Callable[[Path | None, int], torch.nn.Module | StoreGeometry]
EXTRACTORS: Registry[Builder] = Registry("extractor")
# extractors without a network (no checkpoint) -> their width D
GEOMETRIC: Final[dict[str, int]] = {LANDMARKS: LANDMARKS_WIDTH, MESH: len(MESH_COLUMNS)}


def register_extractor(name: str) -> Callable[[Builder], Builder]:
    """Add an encoder builder (checkpoint path, seed) -> module in eval mode with `.encode(images) -> (B, D)`,
    or a StoreGeometry for an extractor that reads the face store without a network."""
    return EXTRACTORS.register(name)


@register_extractor("mae")
def _pretrained(checkpoint: Path | None, seed: int) -> torch.nn.Module:
    assert checkpoint is not None  # only `landmarks` has none (extractor_checkpoint)
    return load_mae(checkpoint)[0]


@register_extractor("random")
def _random_init(checkpoint: Path | None, seed: int) -> torch.nn.Module:
    """The same architecture with untrained weights: the ablation that shows what pretraining buys.

    Seeded with the pipeline seed, which is also what pretraining starts from,
    so on the default pipeline these are exactly the MAE's initial weights.
    """
    assert checkpoint is not None  # only `landmarks` has none (extractor_checkpoint)
    trained = load_mae(checkpoint)[0]
    torch.manual_seed(seed)
    return MAE(trained.config).eval()


FINETUNED = "finetuned_"  # + task: the encoder `abaw finetune --task <task>` wrote


for _task in BASIC_KEYS:  # a fine-tuned encoder loads like the pretrained one, from its own checkpoint
    register_extractor(f"{FINETUNED}{_task}")(_pretrained)


def extractor_checkpoint(name: str, checkpoint: Path, finetuned_dir: Path | None) -> Path | None:
    """The checkpoint extractor `name` reads: the MAE's, for `finetuned_<task>` FINETUNED_DIR/<task>.pt, none
    for the GEOMETRIC ones."""
    if name in GEOMETRIC:
        return None
    if not name.startswith(FINETUNED):
        return checkpoint
    task = name.removeprefix(FINETUNED)
    if finetuned_dir is None:
        raise DataError(None, f"extractor {name} needs the fine-tuned encoders' folder (--finetuned)")
    path = finetuned_dir / f"{task}.pt"
    if not path.is_file():
        raise DataError(path, f"extractor {name}: missing (run `abaw finetune --task {task}` first)")
    return path


@register_extractor(LANDMARKS)
def _landmarks(checkpoint: Path | None, seed: int) -> StoreGeometry:
    return StoreGeometry(GEOMETRY_VERSION, GEOMETRIC[LANDMARKS], landmark_store_features)


@register_extractor(MESH)
def _mesh(checkpoint: Path | None, seed: int) -> StoreGeometry:
    model = landmarker_model()  # checked now: a missing or wrong model file fails before the first video
    return StoreGeometry(MESH_VERSION, GEOMETRIC[MESH], functools.partial(read_mesh_store, model=model), heavy=True)


def build_extractor(name: str, checkpoint: Path | None, seed: int) -> torch.nn.Module | StoreGeometry:
    """Extractor `name` built from `checkpoint` (the MAE's, or a fine-tuned one: see `extractor_checkpoint`);
    a StoreGeometry for the GEOMETRIC ones, which read the face store without a network."""
    return EXTRACTORS.lookup(name)(checkpoint, seed)


@dataclass(frozen=True)
class VideoFeatures:
    """What happened to one video subject for one extractor."""

    extractor: str
    video: str
    frames: int
    encoded: int
    skipped: bool
    seconds: float


def encode_crops(model: torch.nn.Module, crops: np.ndarray | h5py.Dataset | StoredCrops, present: np.ndarray,
                 batch_size: int,
                 device: str = "cpu", precision: str = "fp32") -> np.ndarray:
    """(T, D) float32 features of the frames of `crops` (T, S, S, 3) uint8 with `present` (T,); other rows are zero.

    `crops` is read in contiguous blocks of `batch_size` frames (one read per
    batch from an HDF5 dataset) and only the frames with a face are encoded.
    The model is moved to `device` first (as `Module.to`, in place).
    """
    model = model.to(device)  # the device asked for is where encoding runs, weights included (a no-op when there)
    features: np.ndarray | None = None
    for start in range(0, len(present), batch_size):
        rows = np.flatnonzero(present[start:start + batch_size])
        if not len(rows):
            continue
        block = crops[start:start + batch_size][rows]  # (b, S, S, 3) uint8
        images = normalize(block).to(device)  # (b, 3, S, S)
        # fp32 enters no autocast at all: a device without one (`meta`, in the device-plumbing tests) still runs
        bf16 = torch.autocast(torch.device(device).type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        with torch.inference_mode(), bf16:
            # nn.Module types an unknown attribute as Tensor | Module; every extractor has an encode method
            encoded = model.encode(images).float().cpu().numpy()  # type: ignore[operator]  # (b, D)
        if features is None:
            features = np.zeros((len(present), encoded.shape[1]), np.float32)
        features[start + rows] = encoded
        release_freed_memory()  # per batch: within one long video the freed activations would pile up too
    if features is None:  # no face anywhere: width from a dummy forward
        size = crops.shape[1]
        with torch.inference_mode():
            width = model.encode(torch.zeros(1, 3, size, size, device=device)).shape[1]  # type: ignore[operator]
        features = np.zeros((len(present), width), np.float32)
    return features


def encode_store(model: torch.nn.Module, face_store: Path, batch_size: int, device: str = "cpu",
                 precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(features (T, D) float32, valid (T,) bool) of one face store (`encode_crops` on its crops)."""
    with open_face_store(face_store) as h5:
        present = h5["present"][...]  # (T,)
        features = encode_crops(model, h5["crops"], present, batch_size, device, precision)
    return features, present.astype(bool)


def extractor_features(extractor: torch.nn.Module | StoreGeometry, face_store: Path, batch_size: int,
                       device: str = "cpu", precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(features (T, D) float32, valid (T,) bool) of one face store from a built extractor."""
    if isinstance(extractor, StoreGeometry):
        return extractor.read(face_store)
    return encode_store(extractor, face_store, batch_size, device, precision)


def weights_digest(model: torch.nn.Module) -> str:
    """Digest of a network's parameters and buffers (names, dtypes, shapes, values): equal digests encode alike."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{value.dtype}:{tuple(value.shape)}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:16]


def _face_provenance_digest(face_store: Path) -> str:
    with open_face_store(face_store) as h5:
        return hashlib.sha256(str(h5.attrs.get("provenance", "")).encode()).hexdigest()[:16]


def _read_geometry(model: StoreGeometry, stores: list[Path],
                   workers: int) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """(features, valid, seconds waited for it) of each store in order: in `workers` processes when heavy."""
    start = time.perf_counter()
    if workers <= 1 or len(stores) <= 1 or not model.heavy:
        for face_store in stores:
            features, valid = model.read(face_store)
            yield features, valid, time.perf_counter() - start
            start = time.perf_counter()
        return
    # spawn: torch and h5py do not survive a fork. `model.read` is a top-level function (pickled by name), so a
    # worker imports only what it needs, not this module's torch.
    with ProcessPoolExecutor(min(workers, len(stores)), mp_context=get_context("spawn")) as pool:
        try:
            for features, valid in pool.map(model.read, stores):
                yield features, valid, time.perf_counter() - start
                start = time.perf_counter()
        except BaseException:
            stop_now(pool)
            raise


def extract_features(face_dir: Path, names: Sequence[str], store: FeatureStore, extractors: Sequence[str],
                     checkpoint: Path, *, finetuned_dir: Path | None = None, batch_size: int = 128,
                     device: str = "cpu", precision: str = "fp32", seed: int = 0, shard: tuple[int, int] = (0, 1),
                     workers: int = 1,
                     on_video: Callable[[VideoFeatures], None] = lambda v: None) -> list[VideoFeatures]:
    """Encode the face stores of `names` (sorted; shard i/n keeps every n-th) with each extractor into `store`.

    An extractor whose weights equal an earlier one's in this run (a fine-tuned
    encoder whose linear probe was never beaten is the pretrained one) copies
    that extractor's arrays instead of encoding every frame again. A heavy
    network-free extractor (the landmarker) reads videos in `workers` processes;
    this process alone writes the store, and the arrays are the same for any count.
    """
    index, count = shard
    chosen = sorted(names)[index::count]
    sources = {extractor: extractor_checkpoint(extractor, checkpoint, finetuned_dir) for extractor in extractors}
    done: list[VideoFeatures] = []
    first_with: dict[str, str] = {}  # weights digest -> the first extractor of this run with those weights
    for extractor in extractors:
        source = sources[extractor]
        model = build_extractor(extractor, source, seed)
        twin = None
        if isinstance(model, StoreGeometry):  # no network: nothing to move, no weights to compare
            settings: dict[str, Any] = {"geometry": model.version}
        else:
            assert source is not None, f"extractor {extractor} has a network but no checkpoint"
            model = model.to(device).eval()
            settings = {"checkpoint": file_sha256(source)[:16], "seed": seed, "precision": precision}
            twin = first_with.setdefault(weights_digest(model), extractor)
        todo: list[tuple[str, dict[str, Any]]] = []
        for name in chosen:
            face_store = face_dir / f"{name}.h5"
            provenance: dict[str, Any] = {"extractor": extractor, **settings,
                                          "faces": _face_provenance_digest(face_store), "library": __version__}
            provenance = json.loads(json.dumps(provenance))
            start = time.perf_counter()
            if store.is_current(extractor, name, provenance):
                with open_face_store(face_store) as h5:
                    frames = len(h5["present"])
                done.append(VideoFeatures(extractor, name, frames, 0, True, 0.0))
            elif twin is not None and twin != extractor:  # its loop above made every chosen video current
                features, valid = store.read(twin, name)  # float16 as stored: written back bit-identical
                store.write(extractor, name, features, valid, provenance)
                done.append(VideoFeatures(extractor, name, len(valid), 0, False, time.perf_counter() - start))
            elif isinstance(model, StoreGeometry):  # read below, in worker processes when heavy
                todo.append((name, provenance))
                continue
            else:
                features, valid = extractor_features(model, face_store, batch_size, device, precision)
                store.write(extractor, name, features, valid, provenance)
                done.append(VideoFeatures(extractor, name, len(valid), int(valid.sum()), False,
                                          time.perf_counter() - start))
            on_video(done[-1])
        if isinstance(model, StoreGeometry) and todo:
            stores = [face_dir / f"{name}.h5" for name, _ in todo]
            for (name, provenance), (features, valid, seconds) in zip(
                    todo, _read_geometry(model, stores, workers), strict=True):
                store.write(extractor, name, features, valid, provenance)
                done.append(VideoFeatures(extractor, name, len(valid), int(valid.sum()), False, seconds))
                on_video(done[-1])
    return done
