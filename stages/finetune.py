"""`abaw finetune --task va|expr|au`: the pretrained MAE encoder fine-tuned frame-wise on one task's labels,
read by the features stage as extractor `finetuned_<task>`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from stages._common import ParamsOption, RawOption, TaskName, guarded, read_params, write_report

app = typer.Typer(help="Frame-wise LP-FT of the MAE encoder per task (the finetuned_<task> extractors).")


@app.callback(invoke_without_command=True)
@guarded
def main(
    task: Annotated[TaskName, typer.Option(help="Which task's labels to fine-tune on.", case_sensitive=False)],
    params: ParamsOption = Path("params.yaml"),
    raw: RawOption = Path("data/raw"),
    faces: Annotated[Path, typer.Option(help="Face stores from `abaw faces`.", file_okay=False)] = Path("data/faces"),
    checkpoint: Annotated[Path, typer.Option(help="MAE checkpoint from `abaw pretrain`.", dir_okay=False)] = Path(
        "models/mae/mae.pt"),
    out: Annotated[Path, typer.Option(help="The encoder goes to OUT/<task>.pt.", file_okay=False)] = Path(
        "models/finetuned"),
    report: Annotated[Path, typer.Option(help="Metrics go to REPORT/<task>.json, curves to REPORT/<task>/.",
                                         file_okay=False)] = Path("metrics/finetune"),
) -> None:
    """Linear probe on the frozen encoder, then fine-tune its last blocks; keep the best epoch on validation."""
    from dvclive import Live

    from pipeline_lib.train.finetune import finetune_encoder, load_face_videos, save_finetuned

    settings = read_params(params)
    name = task.value
    train = load_face_videos(raw, faces, name, "train")
    val = load_face_videos(raw, faces, name, "val")
    with Live(str(report / name), dvcyaml=False, save_dvc_exp=False) as live:
        def on_epoch(epoch: int, loss: float, score: float) -> None:
            live.step = epoch
            if epoch:  # epoch 0 is the linear probe: no fine-tuning loss yet
                live.log_metric("train_loss", loss, plot=True)
            live.log_metric(f"val_{name}", score, plot=True)
            what = "linear probe" if epoch == 0 else f"epoch {epoch}/{settings.finetune.epochs}: loss {loss:.4f},"
            typer.echo(f"finetune {name} {what} val {score:.4f}")

        encoder, result = finetune_encoder(train, val, name, checkpoint, settings.finetune, seed=settings.seed,
                                           on_epoch=on_epoch)
    save_finetuned(out / f"{name}.pt", encoder, checkpoint, result, settings.finetune)
    metrics = {"task": name, "metric": result.metric, "best_epoch": result.best_epoch,
               "linear_probe": round(result.scores[0], 4), "finetuned": round(result.best_score, 4),
               "scores": [round(s, 4) for s in result.scores], "train_videos": result.train_videos,
               "val_videos": result.val_videos, "seconds": round(result.seconds, 1)}
    write_report(report / f"{name}.json", metrics)
    kept = "pretrained encoder kept (no epoch beat the linear probe)" if result.best_epoch == 0 else \
        f"epoch {result.best_epoch} kept"
    typer.echo(f"finetune {name}: val {result.metric} {json.dumps(metrics['finetuned'])} vs linear probe "
               f"{json.dumps(metrics['linear_probe'])}; {kept}")
