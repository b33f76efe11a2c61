"""params.yaml -> validated, frozen, typed settings.

This is the only module that reads params.yaml. Every other library function
takes the typed settings (or plain arguments) it needs. Unknown keys and
out-of-range values fail here, before any work starts, with a one-line message
naming the key and what is allowed.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


class ConfigError(ValueError):
    """params.yaml is missing, malformed, or holds an unknown or invalid key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Device = Literal["cpu", "cuda"]  # where a section's networks run; params.yaml may also say `auto` (CUDA when present)
# The sections with a `device` key; in params.yaml each says null to inherit the top-level `device` (as the
# temporal tasks inherit `window`), or names its own.
DEVICE_SECTIONS = (("faces",), ("pretrain",), ("finetune",), ("features",), ("temporal", "common"), ("fusion",),
                   ("compound",))


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (torch is imported only when a setting asks about CUDA)."""
    import torch

    return bool(torch.cuda.is_available())


def _resolve_device(key: str, choice: Any) -> Any:
    """`auto` -> cuda or cpu; `cuda` where torch sees none -> a one-line error naming the key."""
    if choice not in ("cpu", "cuda", "auto", None):
        raise ValueError(f"'{key}' = {choice!r}: expected cpu, cuda or auto (null in a section: the top-level one)")
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice == "cuda" and not cuda_available():
        raise ValueError(f"'{key}' = 'cuda': torch sees no CUDA device on this machine; set it to cpu or auto")
    return choice


def _inherit_devices(raw: dict[str, Any]) -> dict[str, Any]:
    """A copy of a raw params mapping with every section's device inherited (null or absent -> the top-level
    `device`) and resolved (`auto`). Sections that are not mappings are left for validation to report."""
    raw = dict(raw)
    if raw.get("device", "cpu") is None:  # null means "inherit" in a section; the top level has nothing to inherit
        raise ValueError("'device' = None: expected cpu, cuda or auto (null is for a section: the top-level one)")
    top = raw["device"] = _resolve_device("device", raw.get("device", "cpu"))
    for path in DEVICE_SECTIONS:
        section = raw
        for part in path:  # copied on the way down: the caller's nested mappings stay as they were
            child = section.get(part)
            if child is None:
                child = {}
            if not isinstance(child, dict):
                break
            section[part] = section = dict(child)
        else:
            own = section.get("device")
            section["device"] = top if own is None else _resolve_device(".".join((*path, "device")), own)
    return raw


class DemoCorpusSettings(_Section):
    """Size and look of the synthetic demo corpus (DESIGN.md section 6)."""

    train_videos: Annotated[int, Field(ge=1, le=500)] = 14
    val_videos: Annotated[int, Field(ge=1, le=500)] = 12
    test_videos: Annotated[int, Field(ge=0, le=500)] = 3
    unlabeled_videos: Annotated[int, Field(ge=0, le=500)] = 16
    two_subject_videos: Annotated[int, Field(ge=0, le=100)] = 1
    # Videos with one task's labels in the other split (train <-> val), as 86 Aff-Wild2 videos have.
    cross_task_videos: Annotated[int, Field(ge=0, le=100)] = 3
    ce_train_videos: Annotated[int, Field(ge=0, le=500)] = 6
    ce_val_videos: Annotated[int, Field(ge=0, le=500)] = 6
    fps: Annotated[float, Field(gt=0, le=60)] = 15.0
    min_seconds: Annotated[float, Field(gt=0, le=600)] = 8.0
    max_seconds: Annotated[float, Field(gt=0, le=600)] = 14.0
    width: Annotated[int, Field(ge=64, le=1920, multiple_of=2)] = 256
    height: Annotated[int, Field(ge=64, le=1080, multiple_of=2)] = 192
    lfw_identities: Annotated[int, Field(ge=0, le=100)] = 24
    val_identity_share: Annotated[float, Field(gt=0, lt=1)] = 0.3

    @model_validator(mode="after")
    def _check_durations(self) -> DemoCorpusSettings:
        if self.max_seconds < self.min_seconds:
            raise ValueError(
                f"max_seconds ({self.max_seconds}) must be >= min_seconds ({self.min_seconds})"
            )
        return self


class DataSettings(_Section):
    """Where the raw corpus comes from: the embedded demo, or an Aff-Wild2-layout root."""

    source: str = "demo"
    raw_dir: str = "data/raw"
    demo: DemoCorpusSettings = DemoCorpusSettings()

    @property
    def is_demo(self) -> bool:
        return self.source == "demo"


class FacesSettings(_Section):
    """The face stage: detection schedule, detector pyramid, subject following, workers (DESIGN.md sections 1, 5)."""

    source: Literal["detect", "cropped_aligned"] = "detect"
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    workers: Annotated[int, Field(ge=1, le=64)] = 2
    threads_per_worker: Annotated[int, Field(ge=1, le=64)] = 1
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    keyframe_interval: Annotated[int, Field(ge=1, le=300)] = 10
    max_side: Annotated[int, Field(ge=32, le=8192)] | None = 640
    min_face_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.9
    track_min_score: Annotated[float, Field(ge=0, le=1)] = 0.8
    max_motion: Annotated[float, Field(gt=0, le=2)] = 0.25
    min_inside: Annotated[float, Field(ge=0, le=1)] = 0.6
    fill_gap: Annotated[int, Field(ge=0, le=100)] = 0
    strict: bool = False
    samples: Annotated[int, Field(ge=0, le=256)] = 32


class PretrainSettings(_Section):
    """MAE self-supervised pretraining on every aligned face (DESIGN.md section 1, step 2)."""

    model: str = "mae_tiny"  # a registered MAE size (pipeline_lib.models.mae)
    # Patch side in pixels (None = the model's own, 16). 14 gives an 8x8 grid on 112 px faces instead of 7x7
    # at about the same cost; on the demo the 14 px MAE beats its random init on the EXPR probe (0.147 vs 0.097),
    # the 16 px one did not (0.156 vs 0.181).
    patch_size: Annotated[int, Field(ge=1, le=112)] | None = 14
    mask_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.75
    # 6 on the demo: its EXPR probe scored 0.157 after 6 epochs and 0.136 after 24, at a quarter of the time
    epochs: Annotated[int, Field(ge=1, le=10_000)] = 6
    batch_size: Annotated[int, Field(ge=1, le=8192)] = 64
    lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.05
    warmup_epochs: Annotated[float, Field(ge=0, le=1000)] = 1.0
    frame_stride: Annotated[int, Field(ge=1, le=1000)] = 2
    crop_scale_min: Annotated[float, Field(gt=0, le=1)] = 0.8
    flip: bool = True
    color_jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    num_workers: Annotated[int, Field(ge=0, le=64)] = 0
    threads: Annotated[int, Field(ge=1, le=256)] = 2
    samples: Annotated[int, Field(ge=0, le=64)] = 8  # faces in plots/mae_reconstructions.png


class FeaturesSettings(_Section):
    """Frame-feature extraction into the zarr feature store, and the linear probe that compares extractors."""

    # `landmarks`: face-shape geometry of the face stage's 5 points (features.geometry), no network;
    # `mesh`: MediaPipe's blendshapes, head pose and mesh distances on the crops (features.mesh), no network.
    extractors: tuple[Literal["mae", "random", "finetuned_va", "finetuned_expr", "finetuned_au", "landmarks",
                              "mesh"], ...] = (
        "mae", "random", "finetuned_va", "finetuned_expr", "finetuned_au", "landmarks", "mesh")
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 128
    precision: Literal["fp32", "bf16"] = "fp32"
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    threads: Annotated[int, Field(ge=1, le=256)] = 2
    # Processes for the MediaPipe landmarker (`mesh`: one core each, ~7 ms a crop); the encoders use `threads`.
    workers: Annotated[int, Field(ge=1, le=256)] = 2
    probe_stride: Annotated[int, Field(ge=1, le=1000)] = 1  # every n-th labelled frame in the linear probe
    # At most this many frames per split in the probe (the stride grows to fit): its memory and fit time stay
    # bounded on a million-frame split (the demo's ~3k frames are all kept).
    probe_max_frames: Annotated[int, Field(ge=100)] = 50_000
    # More random inits (seeds seed+1 .. seed+n) probed beside the stored `random` group: one draw moves by ±0.03.
    probe_random_inits: Annotated[int, Field(ge=0, le=64)] = 2


class FinetuneSettings(_Section):
    """Frame-wise LP-FT of the MAE encoder per task: the `finetuned_<task>` extractors."""

    blocks: Annotated[int, Field(ge=0, le=64)] = 2  # last encoder blocks that train (0 = linear probe only)
    layer_decay: Annotated[float, Field(gt=0, le=1)] = 0.75  # lr factor per block below the top one
    epochs: Annotated[int, Field(ge=0, le=1000)] = 1
    steps_per_epoch: Annotated[int, Field(ge=1, le=100_000)] = 40
    videos_per_batch: Annotated[int, Field(ge=1, le=1024)] = 4
    frames_per_video: Annotated[int, Field(ge=1, le=4096)] = 16
    lr: Annotated[float, Field(gt=0, le=1)] = 5e-5  # the top trained block; lower ones get layer_decay powers
    head_lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.05
    probe_steps: Annotated[int, Field(ge=0, le=100_000)] = 300  # full-batch steps of the head on frozen features
    probe_lr: Annotated[float, Field(gt=0, le=1)] = 1e-2
    crop_scale_min: Annotated[float, Field(gt=0, le=1)] = 0.8
    flip: bool = True
    color_jitter: Annotated[float, Field(ge=0, le=1)] = 0.2
    batch_size: Annotated[int, Field(ge=1, le=65536)] = 256  # frames per forward when encoding for validation
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    threads: Annotated[int, Field(ge=1, le=256)] = 2


EncoderName = Literal["transformer", "lstm", "gru", "tcn", "framewise"]


class TemporalCommon(_Section):
    """Temporal model and training settings every task inherits (DESIGN.md section 1, step 4)."""

    extractor: str = "mesh"  # feature-store group the model trains on (features.extractors)
    encoder: EncoderName = "transformer"
    hidden: Annotated[int, Field(ge=1, le=8192)] = 128
    layers: Annotated[int, Field(ge=1, le=64)] = 2
    heads: Annotated[int, Field(ge=1, le=64)] = 4  # transformer only
    positions: Literal["sincos", "learned", "none"] = "sincos"  # transformer only
    bidirectional: bool = True  # lstm / gru
    kernel: Annotated[int, Field(ge=1, le=63)] = 3  # tcn
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    convergence: Annotated[int, Field(ge=1, le=255)] = 9  # local k-frame aggregation before the encoder; 1 = off
    stride: Annotated[int, Field(ge=1, le=4096)] | None = None  # training window stride; null = window // 2
    epochs: Annotated[int, Field(ge=1, le=10_000)] = 30
    # stop after this many epochs without a better validation score (null: every epoch); the schedule still
    # spans `epochs`, so what runs is the start of the full run
    patience: Annotated[int, Field(ge=1, le=10_000)] | None = 10
    batch_size: Annotated[int, Field(ge=1, le=8192)] = 16
    lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.05
    mse_weight: Annotated[float, Field(ge=0, le=100)] = 0.0  # va: loss = 1 - CCC + mse_weight * MSE
    baseline: bool = True  # also train the frame-wise baseline (same features and head, no temporal mixing)
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    threads: Annotated[int, Field(ge=1, le=256)] = 2


class TemporalTask(_Section):
    """One task's overrides; null inherits (`window` from the top level, the rest from temporal.common)."""

    window: Annotated[int, Field(ge=1, le=4096)] | None = None
    extractor: str | None = None
    encoder: EncoderName | None = None
    hidden: Annotated[int, Field(ge=1, le=8192)] | None = None
    layers: Annotated[int, Field(ge=1, le=64)] | None = None
    convergence: Annotated[int, Field(ge=1, le=255)] | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    epochs: Annotated[int, Field(ge=1, le=10_000)] | None = None
    lr: Annotated[float, Field(gt=0, le=1)] | None = None
    mse_weight: Annotated[float, Field(ge=0, le=100)] | None = None


# The tasks of labels.BASIC_KEYS (a test holds the two equal): config is the bottom layer and imports nothing.
BasicTask = Literal["va", "expr", "au"]


class ResolvedTemporal(TemporalCommon):
    """temporal.common with a task's overrides applied and its window resolved: what one task trains with."""

    task: BasicTask
    window: Annotated[int, Field(ge=1, le=4096)]

    @property
    def train_stride(self) -> int:
        return self.stride if self.stride is not None else max(1, self.window // 2)


class TemporalSettings(_Section):
    """temporal.common plus one section per task."""

    common: TemporalCommon = TemporalCommon()
    va: TemporalTask = TemporalTask()
    expr: TemporalTask = TemporalTask()
    au: TemporalTask = TemporalTask()

    def resolve(self, task: str, window: int) -> ResolvedTemporal:
        """The settings `task` trains with; `window` is the top-level default."""
        own: TemporalTask = getattr(self, task)
        overrides = {k: v for k, v in own.model_dump().items() if v is not None and k != "window"}
        task_ = cast(BasicTask, task)  # pydantic checks the value against the Literal
        return ResolvedTemporal(**{**self.common.model_dump(), **overrides}, task=task_,
                                window=own.window if own.window is not None else window)


FusionName = Literal["concat", "attention"]
DependencyName = Literal["independent", "feedback", "feature_feedback"]


class PseudoSettings(_Section):
    """Semi-supervised EXPR pseudo-labels from the EXPR temporal model (the teacher); each part can be switched off."""

    enabled: bool = True
    teacher: Literal["temporal", "baseline", "best"] = "temporal"  # EXPR model of the temporal stage (best: on val)
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.7  # teacher confidence to keep a pseudo-label
    per_class: bool = True  # scale the threshold per class by the teacher's mean confidence on it (rare classes)
    weight: Annotated[float, Field(ge=0, le=100)] = 0.5  # loss weight of pseudo-labelled frames vs labelled ones
    uniform_sampling: bool = False  # draw training windows so every EXPR class is seen equally often
    debias: bool = False  # logit adjustment by the pseudo-labelled pool's class prior
    # Counterfactual pseudo-labels: divide the teacher's mean probability over the pool out, to this power (0 = off).
    debias_labels: Annotated[float, Field(ge=0, le=2)] = 1.0
    compare: bool = False  # also train the same model without pseudo-labels in the same run and report both


class LossWeights(_Section):
    va: Annotated[float, Field(ge=0, le=100)] = 1.0
    expr: Annotated[float, Field(ge=0, le=100)] = 1.0
    au: Annotated[float, Field(ge=0, le=100)] = 1.0


class FusionSettings(_Section):
    """Multi-task fusion on frame features plus each task model's hidden features (DESIGN.md section 1, step 5)."""

    extractors: Annotated[list[str], Field(min_length=1)] = [  # frame-feature groups fed in
        "landmarks", "finetuned_va", "finetuned_expr", "finetuned_au", "mesh"]
    task_features: bool = True  # also feed the temporal models' pre-head features
    residual: bool = True  # start from the task models' predictions and learn corrections (never worse at epoch 0)
    fusion: FusionName = "concat"
    dependency: DependencyName = "feature_feedback"
    encoder: EncoderName = "transformer"  # the shared temporal encoder after fusion
    hidden: Annotated[int, Field(ge=1, le=8192)] = 128
    layers: Annotated[int, Field(ge=1, le=64)] = 1
    heads: Annotated[int, Field(ge=1, le=64)] = 4
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    epochs: Annotated[int, Field(ge=1, le=10_000)] = 30
    patience: Annotated[int, Field(ge=1, le=10_000)] | None = 10  # as temporal.common.patience
    batch_size: Annotated[int, Field(ge=1, le=8192)] = 16
    lr: Annotated[float, Field(gt=0, le=1)] = 3e-5  # a residual model corrects the task models; larger steps
    # overwrite them
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.05
    loss_weights: LossWeights = LossWeights()
    pseudo: PseudoSettings = PseudoSettings()
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    threads: Annotated[int, Field(ge=1, le=256)] = 2

    @model_validator(mode="after")
    def _check_widths(self) -> FusionSettings:
        if self.fusion == "attention" and self.hidden % self.heads:
            raise ValueError(f"fusion.hidden ({self.hidden}) must be divisible by fusion.heads ({self.heads})")
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(f"fusion.extractors lists an extractor twice: {self.extractors}")
        return self


class CurriculumSettings(_Section):
    """Stages from single to compound expressions: epochs per stage, the share of compound windows in it, and
    which fraction of those is synthetic (two basic-expression windows mixed) rather than CE-labelled."""

    epochs: Annotated[list[Annotated[int, Field(ge=1, le=10_000)]], Field(min_length=1)] = [5, 5, 3, 3]
    share: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=1)] = [0.0, 0.2, 0.4, 1.0]
    synthetic: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=1)] = [0.0, 0.5, 0.5, 0.0]

    @model_validator(mode="after")
    def _check_stages(self) -> CurriculumSettings:
        if not len(self.epochs) == len(self.share) == len(self.synthetic):
            raise ValueError(f"compound.curriculum needs one share and one synthetic fraction per stage: "
                             f"{len(self.epochs)} epochs entries, {len(self.share)} share entries, "
                             f"{len(self.synthetic)} synthetic entries")
        return self


class SyntheticSettings(_Section):
    """Synthetic compound windows: feature-level Mixup of two basic-expression windows (train/synthetic.py)."""

    enabled: bool = True  # off: curriculum.synthetic is ignored, and a corpus without CE labels gets zero-shot scores
    windows: Annotated[int, Field(ge=1, le=10_000_000)] = 2048  # mixed windows drawn once per run
    mix: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=2, max_length=2)] = [0.3, 0.7]
    purity: Annotated[float, Field(gt=0, le=1)] = 0.6  # share of a window's labelled frames showing its class
    min_frames: Annotated[int, Field(ge=1, le=4096)] = 4  # labelled face frames a pure window needs

    @model_validator(mode="after")
    def _check_mix(self) -> SyntheticSettings:
        if self.mix[0] > self.mix[1]:
            raise ValueError(f"compound.synthetic.mix must be [low, high], got {self.mix}")
        return self


class CompoundSettings(_Section):
    """Curriculum fine-tuning for the 7 compound expressions (DESIGN.md section 1, step 6)."""

    extractors: Annotated[list[str], Field(min_length=1)] = ["mesh"]  # frame-feature groups fed in
    fusion_features: bool = True  # also feed the fusion model's EXPR stream and its zero-shot compound scores
    encoder: EncoderName = "transformer"
    hidden: Annotated[int, Field(ge=1, le=8192)] = 64
    layers: Annotated[int, Field(ge=1, le=64)] = 1
    heads: Annotated[int, Field(ge=1, le=64)] = 4
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    prior: bool = False  # add the log zero-shot score of the model's own basic head to its compound logits
    basic_weight: Annotated[float, Field(ge=0, le=100)] = 1.0  # loss weight of single-expression frames
    constituent_weight: Annotated[float, Field(ge=0, le=100)] = 0.0  # compound frames teach the basic head too
    curriculum: CurriculumSettings = CurriculumSettings()
    synthetic: SyntheticSettings = SyntheticSettings()
    compare: bool = True  # also train directly and synthetic-only (same budget) and report them beside it
    seeds: Annotated[int, Field(ge=1, le=100)] = 3  # every compared run at seeds seed..seed+N-1; the model is seed's
    batch_size: Annotated[int, Field(ge=1, le=8192)] = 16
    lr: Annotated[float, Field(gt=0, le=1)] = 1e-3
    weight_decay: Annotated[float, Field(ge=0, le=1)] = 0.05
    device: Device = "cpu"  # null in params.yaml: the top-level `device`
    threads: Annotated[int, Field(ge=1, le=256)] = 2

    @model_validator(mode="after")
    def _check_extractors(self) -> CompoundSettings:
        if len(set(self.extractors)) != len(self.extractors):
            raise ValueError(f"compound.extractors lists an extractor twice: {self.extractors}")
        return self


class EvaluateSettings(_Section):
    """Scoring, post-processing and challenge files (DESIGN.md section 1, step 7)."""

    va_smoothing: Annotated[int, Field(ge=1, le=1001)] = 9  # frames in the centred moving average of VA
    timeseries_video: str | None = None  # validation video of plots/evaluate/va_timeseries.png; null = the first


class Params(_Section):
    """The whole params.yaml. Stage sections are added as their stages land."""

    seed: Annotated[int, Field(ge=0)] = 0
    window: Annotated[int, Field(ge=1, le=4096)] = 32
    device: Device = "cpu"  # every section's unless it names its own; `auto` in params.yaml: CUDA when present
    data: DataSettings = DataSettings()
    faces: FacesSettings = FacesSettings()
    pretrain: PretrainSettings = PretrainSettings()
    finetune: FinetuneSettings = FinetuneSettings()
    features: FeaturesSettings = FeaturesSettings()
    temporal: TemporalSettings = TemporalSettings()
    fusion: FusionSettings = FusionSettings()
    compound: CompoundSettings = CompoundSettings()
    evaluate: EvaluateSettings = EvaluateSettings()

    @model_validator(mode="before")
    @classmethod
    def _devices(cls, raw: Any) -> Any:
        return _inherit_devices(raw) if isinstance(raw, dict) else raw


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the key at `loc` (its parent section)."""
    model: type[BaseModel] = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    key = _dotted(loc)
    if error["type"] == "extra_forbidden":
        owner = _model_at(loc)
        allowed = sorted(owner.model_fields) if owner else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown key '{key}'{hint}; allowed: {', '.join(allowed)}"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    if not loc:  # a model-level validator
        return error["msg"].removeprefix("Value error, ")
    return f"'{key}' = {shown}: {error['msg'].removeprefix('Value error, ')}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ConfigError with one line per problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader (no tags that build objects), refusing a key given twice in one mapping: plain PyYAML
    keeps the last value silently, so a second `window:` lower down would quietly win."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                                deep: bool = False) -> dict[Any, Any]:
    first: dict[Any, int] = {}
    for key_node, _ in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            key = loader.construct_object(key_node)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice, first at line {first[key]}", key_node.start_mark)
            first[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml (safe YAML only; a key given twice is an error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found (run from the project root or pass --params)")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if raw is None:  # a zero-byte or comment-only file would otherwise run every default silently
        raise ConfigError(f"{path}: empty (expected the settings: seed, window and one section per stage)")
    return parse_params(raw, source=str(path))
