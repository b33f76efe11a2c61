"""Masked losses: CCC against numpy, masks and invalid markers exclude frames, EXPR and AU losses equal torch's
on the filtered frames, class and positive weights on hand-computed cases, empty batches stay finite."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline_lib.train.losses import au_loss, ccc_loss, class_weights, expr_loss, positive_weights, va_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _np_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook CCC with population statistics."""
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).mean()
    return float(2 * cov / (x.var() + y.var() + (mx - my) ** 2))


def _va(b: int = 3, t: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """pred, target (B, T, 2) in [-1, 1] with some -5 targets, and a frame mask (B, T)."""
    g = _gen(seed)
    pred = torch.rand(b, t, 2, generator=g) * 2 - 1
    target = (0.6 * pred + 0.4 * (torch.rand(b, t, 2, generator=g) * 2 - 1)).clamp(-1, 1)
    target[0, :3, 1] = -5.0  # arousal not annotated on three frames
    target[2, 4] = -5.0
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[1, 7:] = False
    return pred, target, mask


# ------------------------------------------------------------------------------------------------ VA
def test_ccc_loss_is_0_for_identical_and_2_for_negated():
    x = torch.randn(4, 16, 2, generator=_gen())
    x = x - x.mean(dim=(0, 1))  # zero mean, so -x has the same mean and CCC(x, -x) = -1 exactly
    assert abs(float(ccc_loss(x, x))) < 1e-6
    assert abs(float(ccc_loss(-x, x)) - 2.0) < 1e-6


def test_ccc_loss_matches_numpy_over_the_valid_frames_of_the_batch():
    pred, target, mask = _va()
    expected = []
    for c in range(2):
        keep = (mask & (target[..., c] != -5)).numpy()
        expected.append(1 - _np_ccc(pred[..., c].numpy()[keep].astype(np.float64),
                                    target[..., c].numpy()[keep].astype(np.float64)))
    assert float(ccc_loss(pred, target, mask)) == pytest.approx(np.mean(expected), abs=1e-5)
    # Flattened frames (N, 2) with an (N,) mask give the same.
    assert float(ccc_loss(pred.reshape(-1, 2), target.reshape(-1, 2), mask.reshape(-1))) == pytest.approx(
        np.mean(expected), abs=1e-5)


def test_masked_out_frames_and_invalid_labels_do_not_count():
    pred, target, mask = _va()
    base = ccc_loss(pred, target, mask)
    moved_pred, moved_target = pred.clone(), target.clone()
    moved_pred[~mask] = 7.0 * torch.randn(int((~mask).sum()), 2)
    moved_target[~mask] = -3.0
    moved_pred[target == -5] = 9.0  # predictions where the label says "not annotated"
    torch.testing.assert_close(ccc_loss(moved_pred, moved_target, mask), base)
    # A per-entry mask (B, T, 2) that drops a whole dimension leaves the other's loss alone.
    entries = mask[..., None].repeat(1, 1, 2)
    entries[..., 1] = False
    keep = mask & (target[..., 0] != -5)
    expected = 1 - _np_ccc(pred[..., 0][keep].double().numpy(), target[..., 0][keep].double().numpy())
    assert float(ccc_loss(pred, target, entries)) == pytest.approx(expected, abs=1e-5)


def test_va_loss_adds_a_masked_mse():
    pred, target, mask = _va()
    keep = mask[..., None] & (target != -5)
    mse = ((pred - target)[keep] ** 2).mean()
    torch.testing.assert_close(va_loss(pred, target, mask), ccc_loss(pred, target, mask))
    torch.testing.assert_close(va_loss(pred, target, mask, mse_weight=0.5), ccc_loss(pred, target, mask) + 0.5 * mse)


def test_ccc_loss_is_differentiable_and_ignores_dimensions_with_fewer_than_two_frames():
    pred, target, mask = _va()
    pred.requires_grad_(True)
    ccc_loss(pred, target, mask).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert torch.all(pred.grad[~mask] == 0)
    one = torch.zeros(3, 10, dtype=torch.bool)
    one[0, 5] = True  # a single valid frame: no CCC anywhere
    loss = ccc_loss(pred, target, one)
    assert loss.item() == 0.0 and loss.requires_grad


# ------------------------------------------------------------------------------------------------ EXPR
def test_class_weights_on_a_hand_computed_case():
    labels = np.array([0, 0, 0, 1, -1, -1, 2, 2, 2, 2, 2, 2], dtype=np.float32)  # counts 3, 1, 6; class 3 absent
    inverse = np.array([1 / 3, 1.0, 1 / 6, 1.0])  # the absent class takes the largest present weight
    torch.testing.assert_close(class_weights(labels, n_classes=4),
                               torch.tensor(inverse / inverse.mean(), dtype=torch.float32))
    assert float(class_weights(labels, 4).mean()) == pytest.approx(1.0)
    torch.testing.assert_close(class_weights(np.full(5, -1), 8), torch.ones(8))
    with pytest.raises(ValueError, match="integers"):
        class_weights(np.array([0, 8]), 8)


def test_expr_loss_equals_torch_cross_entropy_on_the_valid_frames():
    g = _gen(1)
    logits = torch.randn(3, 10, 8, generator=g)
    target = torch.randint(0, 8, (3, 10), generator=g)
    target[0, :4] = -1
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2, 6:] = False
    weights = class_weights(target[target >= 0].numpy())
    keep = mask & (target >= 0)
    for w in (None, weights):
        expected = F.cross_entropy(logits[keep], target[keep], weight=w)
        torch.testing.assert_close(expr_loss(logits, target, mask, w), expected)
    # A float target (the (T, 15) label array's column) and junk under the mask change nothing.
    junk = target.clone().float()
    junk[~mask] = 3.0
    torch.testing.assert_close(expr_loss(logits, junk, mask, weights), F.cross_entropy(
        logits[keep], target[keep], weight=weights))


# ------------------------------------------------------------------------------------------------ AU
def test_positive_weights_on_a_hand_computed_case():
    labels = np.array([[1, 0, 0, -1, 1],
                       [0, 0, 0, -1, 1],
                       [0, 0, 1, -1, 1],
                       [0, 0, -1, -1, 0]], dtype=np.float32)
    # neg/pos: 3/1 = 3; no positive -> 50; 2/1 = 2; no valid entry -> 1; 1/3 -> clamped up to 1.
    torch.testing.assert_close(positive_weights(labels), torch.tensor([3.0, 50.0, 2.0, 1.0, 1.0]))
    torch.testing.assert_close(positive_weights(labels, low=0.0, high=10.0), torch.tensor([3.0, 10.0, 2.0, 1.0,
                                                                                           1 / 3]))
    with pytest.raises(ValueError, match="0, 1 or -1"):
        positive_weights(np.array([[0.0, 2.0]]))


def test_au_loss_equals_bce_on_the_valid_entries():
    g = _gen(2)
    logits = torch.randn(2, 6, 12, generator=g)
    target = torch.randint(0, 2, (2, 6, 12), generator=g).float()
    target[0, 1] = -1
    target[1, :, 3] = -1
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False
    pos_weight = positive_weights(target.reshape(-1, 12).numpy())
    keep = mask[..., None] & (target >= 0)
    expected = F.binary_cross_entropy_with_logits(logits[keep], target[keep],
                                                  pos_weight=pos_weight.expand_as(logits)[keep])
    torch.testing.assert_close(au_loss(logits, target, mask, pos_weight), expected)
    torch.testing.assert_close(au_loss(logits, target, mask), F.binary_cross_entropy_with_logits(
        logits[keep], target[keep]))
    torch.testing.assert_close(au_loss(logits, target, keep, pos_weight), expected)  # a per-entry mask works too


# ------------------------------------------------------------------------------------------------ empty batches
@pytest.mark.parametrize("task", ["va", "ccc", "expr", "au"])
@pytest.mark.parametrize("why", ["mask", "labels"])
def test_a_batch_without_valid_frames_gives_a_connected_zero(task, why):
    logits = torch.randn(2, 5, {"va": 2, "ccc": 2, "expr": 8, "au": 12}[task], requires_grad=True)
    mask = torch.zeros(2, 5, dtype=torch.bool) if why == "mask" else torch.ones(2, 5, dtype=torch.bool)
    if task in ("va", "ccc"):
        target = torch.full((2, 5, 2), 0.5 if why == "mask" else -5.0)
        loss = va_loss(torch.tanh(logits), target, mask, mse_weight=1.0) if task == "va" else ccc_loss(
            logits, target, mask)
    elif task == "expr":
        loss = expr_loss(logits, torch.full((2, 5), 3 if why == "mask" else -1), mask, torch.ones(8))
    else:
        loss = au_loss(logits, torch.full((2, 5, 12), 1.0 if why == "mask" else -1.0), mask, torch.ones(12))
    assert loss.shape == () and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_shape_mismatches_fail_clearly():
    with pytest.raises(ValueError, match="one shape"):
        ccc_loss(torch.zeros(2, 3, 2), torch.zeros(2, 3, 1))
    with pytest.raises(ValueError, match="fits neither"):
        au_loss(torch.zeros(2, 3, 12), torch.zeros(2, 3, 12), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="do not match"):
        expr_loss(torch.zeros(2, 3, 8), torch.zeros(2, 4, dtype=torch.long))


def test_bf16_inputs_are_scored_in_float32():
    pred, target, mask = _va()
    loss = ccc_loss(pred.bfloat16(), target, mask)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(float(ccc_loss(pred.bfloat16().float(), target, mask)), abs=1e-6)
