"""The shared epoch loop: best epoch kept, the start can win, injected optimizers, and a stop on a NaN loss."""

import pickle

import pytest
import torch

from pipeline_lib.train.loop import LossNotFinite, fit


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


def test_a_given_start_competes_like_validate_first_without_scoring_again():
    model, batches, loss = _setup()
    calls = []

    def score():
        calls.append(1)
        return {"score": -abs(float(model(torch.ones(1, 1)).detach()) - 1.0)}

    fitted = fit(model, batches, loss, score, "score", epochs=2, lr=0.1, start={"score": 0.0})
    assert fitted.best_epoch == -1 and fitted.best == {"score": 0.0} and len(calls) == 2  # once per epoch only
    assert model.weight.item() == 1.0 and model.bias.item() == 0.0
    with pytest.raises(ValueError, match="needs `lr`"):
        fit(model, batches, loss, score, "score", epochs=1)


def test_zero_epochs_with_a_start_keep_the_model_as_it_is():
    model, batches, loss = _setup()
    fitted = fit(model, batches, loss, None, "score", epochs=0, lr=0.1, start={"score": 0.5})
    assert fitted.best_epoch == -1 and fitted.train_loss == [] and model.weight.item() == 1.0


def test_an_injected_optimizer_keeps_its_groups_rates_without_schedule_or_clipping():
    model, batches, loss = _setup()
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.01}, {"params": [model.bias], "lr": 0.0}])
    fit(model, batches, loss, None, "score", epochs=2, optimizer=optimizer, schedule=False, clip=None)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert model.bias.item() == 0.0  # its rate stayed 0: no schedule rewrote it
    # d/dw mean((w - 5)^2) = 2 (w - 5) = -8 at w = 1, unclipped: w = 1 + 0.01 * 8 = 1.08, then 1.08 + 0.01 * 7.84
    assert model.weight.item() == pytest.approx(1.08 + 0.01 * 2 * (5 - 1.08))


def test_the_default_schedule_warms_up_every_group_from_its_own_rate():
    model, batches, loss = _setup()
    optimizer = torch.optim.SGD([{"params": [model.weight], "lr": 0.2}, {"params": [model.bias], "lr": 0.1}])
    seen = []
    fit(model, batches * 2, lambda b: (seen.append([g["lr"] for g in optimizer.param_groups]), loss(b))[1],
        None, "score", epochs=2, optimizer=optimizer)
    # Two steps of warm-up (one epoch), then the cosine from each group's own rate.
    assert sum(seen[:3], []) == pytest.approx([0.1, 0.05, 0.2, 0.1, 0.2, 0.1]) and seen[3][0] == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_stops_with_the_stage_epoch_and_step_before_the_update(bad):
    model, batches, loss = _setup()
    steps = [0]

    def batch_loss(batch):
        steps[0] += 1
        return loss(batch) * (bad if steps[0] == 4 else 1.0)

    before = []
    with pytest.raises(LossNotFinite) as caught:
        fit(model, batches * 3, batch_loss, lambda: before.append(model.weight.item()) or {"s": 0.0}, "s",
            epochs=3, lr=0.1, name="temporal va")
    message = str(caught.value)
    assert message.startswith(f"temporal va: the training loss is {bad} at epoch 2, step 1 of 3;")
    assert "\n" not in message and torch.isfinite(model.weight).all()  # the step that would spread it never ran
    assert isinstance(caught.value, ValueError)  # a DataError: the CLI prints one line and exits 2
    assert str(pickle.loads(pickle.dumps(caught.value))) == message


def _scripted(scores: list[float]):
    """validate() returning the scores in turn, with the model's weight at each call."""
    seen: list[float] = []

    def validate_factory(model):
        def validate():
            seen.append(model.weight.item())
            return {"score": scores[len(seen) - 1]}
        return validate

    return validate_factory, seen


def test_patience_stops_after_that_many_epochs_without_a_better_score_and_keeps_the_best():
    model, batches, loss = _setup()
    factory, seen = _scripted([0.1, 0.5, 0.4, 0.5, 0.3, 0.9, 1.0])
    fitted = fit(model, batches, loss, factory(model), "score", epochs=7, lr=0.1, patience=3)
    assert fitted.val_metric == [0.1, 0.5, 0.4, 0.5, 0.3]  # best at epoch 1; 2, 3, 4 not better (a tie is not)
    assert fitted.best_epoch == 1 and model.weight.item() == seen[1]


def test_patience_leaves_the_epochs_that_run_as_in_the_full_run():
    runs = {}
    for patience in (None, 2):
        model, batches, loss = _setup()
        factory, seen = _scripted([0.1, 0.5, 0.4, 0.3, 0.2, 0.1])
        fitted = fit(model, batches, loss, factory(model), "score", epochs=6, lr=0.1, patience=patience)
        runs[patience] = (fitted, list(seen))
    full, early = runs[None], runs[2]
    assert len(full[0].val_metric) == 6 and len(early[0].val_metric) == 4
    assert early[1] == full[1][:4]  # the same weights epoch by epoch: the schedule spans `epochs` either way
    assert early[0].best_epoch == full[0].best_epoch == 1


def test_patience_counts_from_a_start_that_no_epoch_beats():
    model, batches, loss = _setup()
    factory, _ = _scripted([0.1, 0.2, 0.3])
    fitted = fit(model, batches, loss, factory(model), "score", epochs=3, lr=0.1, start={"score": 1.0}, patience=2)
    assert fitted.best_epoch == -1 and fitted.val_metric == [0.1, 0.2]
