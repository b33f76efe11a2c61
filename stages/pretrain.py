"""`abaw pretrain`: self-supervised MAE on every aligned face in data/faces (labelled or not)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from stages._common import ParamsOption, guarded, read_params

app = typer.Typer(help="MAE self-supervised pretraining on the face stores (runs under torchrun for DDP).")


@app.callback(invoke_without_command=True)
@guarded
def main(
    params: ParamsOption = Path("params.yaml"),
    faces: Annotated[Path, typer.Option(help="Face store folder from `abaw faces`.", file_okay=False)] = Path(
        "data/faces"),
    out: Annotated[Path, typer.Option(help="Checkpoint folder (the DVC output).",
                                      file_okay=False)] = Path("models/mae"),
    live_dir: Annotated[Path, typer.Option(help="dvclive folder: metrics.json and loss curves.",
                                           file_okay=False)] = Path(
        "metrics/pretrain"),
    plot: Annotated[Path, typer.Option(help="Reconstruction figure (PNG).", dir_okay=False)] = Path(
        "plots/mae_reconstructions.png"),
) -> None:
    """Train the MAE; resumes from OUT/last.pt when its settings match. Under torchrun, rank 0 alone writes."""
    from contextlib import nullcontext

    from dvclive import Live

    from pipeline_lib.train import distributed
    from pipeline_lib.train.face_frames import FaceFrames
    from pipeline_lib.train.pretrain import pretrain_mae
    from pipeline_lib.train.reconstructions import save_reconstructions

    settings = read_params(params)
    stores = sorted(faces.glob("*.h5"))
    if not stores:
        raise typer.BadParameter(f"no face stores in {faces}: run `abaw faces` first", param_hint="--faces")
    main_rank = distributed.is_main()  # RANK from torchrun: right before the process group is joined
    try:
        with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) if main_rank else nullcontext() as live:
            def on_step(step: int, loss: float, lr: float) -> None:
                assert live is not None  # called on rank 0 alone, the main rank, which opened Live
                live.log_metric("train/loss", loss, plot=True)
                live.log_metric("train/lr", lr, plot=True)
                live.next_step()

            def on_epoch(epoch: int, loss: float) -> None:
                typer.echo(f"epoch {epoch + 1}/{settings.pretrain.epochs}: loss {loss:.4f}")

            model, result = pretrain_mae(stores, settings.pretrain, out, seed=settings.seed, on_step=on_step,
                                         on_epoch=on_epoch)
            losses = result.epoch_losses
            if main_rank:
                assert live is not None  # the main rank opened Live
                live.summary.update({"images": result.images, "epochs": settings.pretrain.epochs,
                                     "first_epoch_loss": round(losses[0], 5) if losses else None,
                                     "final_loss": round(losses[-1], 5) if losses else None,
                                     "images_per_second": round(result.images_per_second, 1)})
    finally:
        distributed.leave()
    if not main_rank:
        return
    processes = distributed.world_size()
    samples = FaceFrames(stores, frame_stride=1)
    picks = np.linspace(0, len(samples) - 1, min(settings.pretrain.samples, len(samples))).round().astype(int)
    save_reconstructions(model, np.stack([samples.crop(int(i)) for i in picks]) if len(picks) else
                         np.zeros((0, 112, 112, 3), np.uint8), plot, settings.pretrain.mask_ratio, settings.seed)
    typer.echo(f"pretrain: {result.images} faces, {result.epochs_run} epoch(s) run "
               f"(resumed after {result.resumed_from_epoch}), final loss "
               f"{json.dumps(round(losses[-1], 4) if losses else None)}"
               + (f" ({processes} processes)" if processes > 1 else ""))
