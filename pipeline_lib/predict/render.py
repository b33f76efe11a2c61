"""The three user-facing outputs of `abaw predict` from one video's per-frame predictions.

A CSV (one row a frame, for scripts and spreadsheets), an overlay mp4 (the
video with box, expression, valence/arousal and compound drawn on, for a look
by eye) and a timeline PNG (the whole video at a glance). Frames are indexed
in decode order, as `faces.extract.decode_batches` indexes them.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal, cast

import av
import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image, ImageDraw, ImageFont

from pipeline_lib.data.labels import AU_NAMES, CE_NAMES, EXPR_NAMES
from pipeline_lib.files import atomic_path

__all__ = ["CSV_COLUMNS", "ENCODERS", "FramePredictions", "timeline_png", "write_csv", "write_overlay"]

CSV_COLUMNS: Final[tuple[str, ...]] = (
    "frame", "time", "face_present", "valence", "arousal", "expression", *(f"p_{n}" for n in EXPR_NAMES),
    *AU_NAMES, "compound", *(f"p_{n}" for n in CE_NAMES),
)
# The first one this PyAV build can encode with is used.
ENCODERS: Final[tuple[Literal["libx264", "mpeg4"], ...]] = ("libx264", "mpeg4")
_TAB10: Final = cast(ListedColormap, colormaps["tab10"])  # a listed colormap: 10 colours
_COLOURS: Final[list[tuple[int, int, int]]] = [cast(tuple[int, int, int], tuple(round(255 * c) for c in _TAB10(i)[:3]))
                                               for i in range(10)]
_WIDTHS: Final = {"boxes": 4, "va": 2, "expr": len(EXPR_NAMES), "au": len(AU_NAMES), "ce": len(CE_NAMES)}


@dataclass(frozen=True)
class FramePredictions:
    """Per-frame predictions of one video (T frames); rows of frames without a face are ignored (may hold anything)."""

    fps: float
    present: np.ndarray  # (T,) bool, a face was found
    boxes: np.ndarray  # (T, 4) float32 x1, y1, x2, y2 in frame pixels (NaN where no face)
    va: np.ndarray  # (T, 2) float32 valence, arousal in [-1, 1]
    expr: np.ndarray  # (T, 8) float32 EXPR probabilities (EXPR_NAMES order)
    au: np.ndarray  # (T, 12) float32 AU probabilities (AU_NAMES order)
    ce: np.ndarray  # (T, 7) float32 compound probabilities (CE_NAMES order)
    mesh: np.ndarray | None = None  # (T, 478, 2) float32 face-mesh points in frame pixels (NaN where none), drawn

    def __post_init__(self) -> None:
        if not (isinstance(self.fps, (int, float)) and np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps: expected a positive frame rate, got {self.fps!r}")
        present = self.present
        if not isinstance(present, np.ndarray) or present.dtype != np.bool_ or present.ndim != 1:
            raise ValueError(f"present: expected a (T,) bool array, got {_describe(present)}")
        for name, width in _WIDTHS.items():
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.shape != (len(present), width):
                raise ValueError(f"{name}: expected a ({len(present)}, {width}) float32 array, got {_describe(value)}")
        if self.mesh is not None and (self.mesh.dtype != np.float32 or self.mesh.shape[::2] != (len(present), 2)):
            raise ValueError(f"mesh: expected a ({len(present)}, N, 2) float32 array, got {_describe(self.mesh)}")

    @property
    def n_frames(self) -> int:
        return len(self.present)


def _describe(value: object) -> str:  # for error messages
    return f"{value.shape} {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__


def _argmax(probs: np.ndarray) -> np.ndarray:
    """(T, C) -> (T,) int64; NaN (faceless rows may hold it) never wins."""
    return np.argmax(np.nan_to_num(probs, nan=-np.inf), axis=1)


def write_csv(path: Path, preds: FramePredictions) -> Path:
    """One row a frame with CSV_COLUMNS; prediction cells are empty where no face was found."""
    expr, ce = _argmax(preds.expr), _argmax(preds.ce)  # (T,), (T,)
    blank = [""] * (len(CSV_COLUMNS) - 3)
    with atomic_path(path, keep_suffix=True) as tmp, tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for i in range(preds.n_frames):
            head = [i, f"{i / preds.fps:.3f}", int(preds.present[i])]
            if not preds.present[i]:
                writer.writerow(head + blank)
                continue
            writer.writerow(head + [*_fmt(preds.va[i]), EXPR_NAMES[expr[i]], *_fmt(preds.expr[i]),
                                    *_fmt(preds.au[i]), CE_NAMES[ce[i]], *_fmt(preds.ce[i])])
    return path


def _fmt(values: np.ndarray) -> list[str]:
    return [f"{v:.4f}" for v in values.tolist()]


def _encoder() -> Literal["libx264", "mpeg4"]:
    for name in ENCODERS:
        try:
            av.codec.Codec(name, "w")
            return name
        except av.codec.codec.UnknownCodecError:
            continue
    raise RuntimeError(f"this PyAV build can encode with none of {ENCODERS}")


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: ImageFont.FreeTypeFont,
           fill: tuple[int, int, int]) -> None:
    """Text on a solid patch of `fill`, inked black or white, whichever reads better on it."""
    left, top, right, bottom = draw.textbbox(xy, text, font=font)
    pad = max(1, font.size // 5)
    draw.rectangle((left - pad, top - pad, right + pad, bottom + pad), fill=fill)
    ink = (0, 0, 0) if 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2] > 140 else (255, 255, 255)
    draw.text(xy, text, font=font, fill=ink)


def _draw(image: Image.Image, preds: FramePredictions, i: int, font: ImageFont.FreeTypeFont) -> None:
    """Box and expression label on the face; a valence/arousal panel and the compound class top left."""
    draw = ImageDraw.Draw(image)
    size, pad = font.size, max(2, font.size // 3)
    if not preds.present[i]:
        _label(draw, (pad * 2, pad * 2), "no face", font, (40, 40, 40))
        return
    k = int(_argmax(preds.expr[i : i + 1])[0])
    if preds.mesh is not None:  # one pixel a point: the mesh reads as a net without hiding the face
        points = preds.mesh[i][np.isfinite(preds.mesh[i]).all(1)]  # (n, 2)
        draw.point([tuple(p) for p in points.tolist()], fill=(0, 255, 200))
    x1, y1, x2, y2 = preds.boxes[i].tolist()
    draw.rectangle((x1, y1, x2, y2), outline=_COLOURS[k], width=max(1, image.height // 180))
    above = y1 - size - 2 * pad  # inside the box when the face touches the top edge
    _label(draw, (x1, above if above >= 0 else y1 + pad), f"{EXPR_NAMES[k]} {preds.expr[i, k]:.0%}", font, _COLOURS[k])
    # Bars centred at 0 read at a glance on any frame size, unlike a dot on a small circle.
    c = int(_argmax(preds.ce[i : i + 1])[0])
    compound = f"{CE_NAMES[c]} {preds.ce[i, c]:.0%}"
    half, bar_x = 3 * size, pad * 2 + draw.textlength("A ", font=font)
    right = max(bar_x + 2 * half + draw.textlength(" +0.00", font=font), pad * 2 + draw.textlength(compound, font=font))
    draw.rectangle((pad, pad, right + pad, pad * 5 + 3 * size), fill=(30, 30, 30))
    for row, (name, value) in enumerate(zip(("V", "A"), preds.va[i].tolist())):
        top, centre = 2 * pad + row * (size + pad), bar_x + half
        draw.text((pad * 2, top), name, font=font, fill=(255, 255, 255))
        draw.rectangle((bar_x, top, bar_x + 2 * half, top + size), fill=(80, 80, 80))
        end = centre + half * float(np.clip(value, -1, 1))
        draw.rectangle((min(centre, end), top, max(centre, end), top + size),
                       fill=(80, 200, 80) if value >= 0 else (220, 80, 80))
        draw.line((centre, top, centre, top + size), fill=(255, 255, 255))
        draw.text((bar_x + 2 * half + pad, top), f"{value:+.2f}", font=font, fill=(255, 255, 255))
    draw.text((pad * 2, 2 * pad + 2 * (size + pad)), compound, font=font, fill=(255, 255, 255))


def _decoded(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """Frames until the first decoding error: predictions came from a decoder that stopped there too."""
    try:
        yield from container.decode(stream)
    except av.error.FFmpegError:
        return


def write_overlay(video: Path, out: Path, preds: FramePredictions) -> Path:
    """`video` re-encoded (mp4, source frame rate) with predictions drawn on its first preds.n_frames frames.

    The output's width and height are rounded up to even (yuv420p needs them) by repeating the last
    column/row; frames whose size differs from the first one's are resized to it.
    """
    codec = _encoder()
    with (av.open(str(video)) as source, atomic_path(out, keep_suffix=True) as tmp,
          av.open(str(tmp), "w", format="mp4") as sink):
        if not source.streams.video:
            raise ValueError(f"{video.name}: no video stream")
        stream = source.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or Fraction(preds.fps).limit_denominator(1001)
        encoder, size, font = None, (0, 0), None
        for i, frame in enumerate(_decoded(source, stream)):
            image = frame.to_image()  # RGB
            if encoder is None:
                size = image.size
                # with a size, Pillow's default font is a FreeType one
                font = cast(ImageFont.FreeTypeFont, ImageFont.load_default(size=max(9, round(size[1] / 28))))
                encoder = sink.add_stream(codec, rate=rate)
                encoder.width, encoder.height, encoder.pix_fmt = size[0] + size[0] % 2, size[1] + size[1] % 2, "yuv420p"
                if codec == "libx264":
                    encoder.options = {"crf": "20", "preset": "veryfast"}
            if i < preds.n_frames:
                assert font is not None  # loaded with the encoder, on the first frame
                _draw(image, preds, i, font)
            if image.size != size:
                image = image.resize(size)
            pixels = np.pad(np.asarray(image), ((0, size[1] % 2), (0, size[0] % 2), (0, 0)), mode="edge")  # (H, W, 3)
            out_frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            out_frame.pts = i
            sink.mux(encoder.encode(out_frame))
        if encoder is None:
            raise ValueError(f"{video.name}: no frame decoded")
        sink.mux(encoder.encode())  # flush the encoder's delayed frames
    return out


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """(T,) bool -> [start, stop) index runs where it is True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def timeline_png(path: Path, preds: FramePredictions, title: str) -> Path:
    """Valence/arousal, EXPR and AU probabilities and the compound class over time; faceless spans shaded."""
    t = np.arange(preds.n_frames) / preds.fps  # (T,) seconds
    half = 0.5 / preds.fps
    extent = (-half, t[-1] + half if len(t) else half)
    absent = ~preds.present[:, None]  # (T, 1)
    figure = Figure(figsize=(12, 7.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [2, 2, 2.4, 0.6]})
    va = np.where(absent, np.nan, preds.va)  # (T, 2); NaN breaks the lines where no face was found
    for j, name in enumerate(("valence", "arousal")):
        axes[0].plot(t, va[:, j], label=name, lw=1.2)
    axes[0].axhline(0, color="0.5", lw=0.6)
    axes[0].set(ylim=(-1.05, 1.05), ylabel="V / A")
    heat = dict(aspect="auto", interpolation="nearest", vmin=0, vmax=1, cmap="viridis")
    for ax, probs, names in ((axes[1], preds.expr, EXPR_NAMES), (axes[2], preds.au, AU_NAMES)):
        masked = np.ma.masked_invalid(np.where(absent, np.nan, probs)).T  # (C, T); masked cells stay transparent
        image = ax.imshow(masked, extent=(*extent, len(names) - 0.5, -0.5), **heat)
        ax.set_yticks(range(len(names)), names, fontsize=7)
    shown = preds.present
    axes[1].scatter(t[shown], _argmax(preds.expr)[shown], s=4, c="red", marker="s", label="argmax")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    colourbar = axes[2].inset_axes((1.01, 0.0, 0.012, 1.0))
    figure.colorbar(image, cax=colourbar, label="probability")
    compound = np.where(preds.present, _argmax(preds.ce), np.nan)[None]  # (1, T)
    axes[3].imshow(np.ma.masked_invalid(compound), extent=(*extent, 0.5, -0.5), aspect="auto", interpolation="nearest",
                   cmap=ListedColormap(cast(tuple[Any, ...], _TAB10.colors)[: len(CE_NAMES)]),  # tab10's colours
                   vmin=-0.5, vmax=len(CE_NAMES) - 0.5)
    axes[3].set_yticks([0], ["compound"], fontsize=7)
    axes[3].legend(handles=[Patch(color=_TAB10(k), label=n) for k, n in enumerate(CE_NAMES)], fontsize=7,
                   loc="upper left", bbox_to_anchor=(1.01, 1.6), frameon=False)
    for ax in axes:
        for start, stop in _spans(~preds.present):
            ax.axvspan(start / preds.fps - half, stop / preds.fps - half, color="0.6", alpha=0.35, lw=0)
    axes[0].legend(handles=[*axes[0].get_lines()[:2], Patch(color="0.6", alpha=0.35, label="no face")],
                   loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    axes[0].set_xlim(*extent)
    axes[-1].set_xlabel("time (s)")
    figure.suptitle(title, fontsize=10)
    with atomic_path(path, keep_suffix=True) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path
