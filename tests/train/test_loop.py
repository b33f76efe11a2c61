"""The shared epoch loop: best epoch kept, and with validate_first the untrained weights can win."""

import torch

from pipeline_lib.train.loop import fit


def _setup():
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    batches = [{"x": torch.ones(4, 1), "y": torch.full((4, 1), 5.0)}]

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch["x"]), batch["y"])

    return model, batches, loss


def test_validate_first_keeps_the_untrained_weights_when_no_epoch_beats_them():
    model, batches, loss = _setup()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    # The score falls as training moves the output away from 1 (the training target is 5).
    score = lambda: {"score": -abs(float(model(torch.ones(1, 1)).detach()) - 1.0)}  # noqa: E731
    fitted = fit(model, batches, loss, score, "score", epochs=3, lr=0.1, weight_decay=0.0, validate_first=True)
    assert fitted.best_epoch == -1 and fitted.best == {"score": 0.0} and len(fitted.val_metric) == 3
    assert all(v < 0 for v in fitted.val_metric)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in start.items())


def test_validate_first_still_takes_an_epoch_that_beats_the_start():
    model, batches, loss = _setup()
    score = lambda: {"score": -abs(float(model(torch.ones(1, 1)).detach()) - 5.0)}  # noqa: E731
    fitted = fit(model, batches, loss, score, "score", epochs=3, lr=0.1, weight_decay=0.0, validate_first=True)
    assert fitted.best_epoch == 2 and fitted.best["score"] == max(fitted.val_metric) > -4.0


def test_without_validate_first_the_first_epoch_is_kept_even_when_worse_than_the_start():
    model, batches, loss = _setup()
    score = lambda: {"score": -abs(float(model(torch.ones(1, 1)).detach()) - 1.0)}  # noqa: E731
    fitted = fit(model, batches, loss, score, "score", epochs=3, lr=0.1, weight_decay=0.0)
    assert fitted.best_epoch == 0 and fitted.best["score"] == fitted.val_metric[0] < 0
