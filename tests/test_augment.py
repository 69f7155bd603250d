"""Batched augmentation: per-image parameters, identity at zero strength, geometry."""

from __future__ import annotations

import torch

from mnist_tui.config.spec import AugmentSpec
from mnist_tui.data.augment import affine_matrices, augment_batch


def _batch(n: int = 16) -> torch.Tensor:
    x = torch.zeros(n, 1, 28, 28)
    x[:, :, 8:20, 10:14] = 1.0  # the same bar in every image
    return x


def test_zero_strength_is_identity() -> None:
    x = _batch()
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, AugmentSpec(), g)
    assert out is x
    zeroed = AugmentSpec(hflip=0.0, rotation=0.0, translate=0.0, noise_std=0.0)
    assert torch.equal(augment_batch(x, zeroed, g), x)


def test_parameters_differ_within_a_batch() -> None:
    g = torch.Generator().manual_seed(0)
    for cfg in (
        AugmentSpec(rotation=30),
        AugmentSpec(translate=0.2),
        AugmentSpec(crop_scale=[0.5, 1.0]),
        AugmentSpec(scale=[0.8, 1.2]),
    ):
        theta = affine_matrices(32, cfg, g, torch.device("cpu"))
        assert theta.shape == (32, 2, 3)
        assert len({tuple(t.flatten().tolist()) for t in theta}) == 32, cfg
        out = augment_batch(_batch(32), cfg, g)
        distinct = {tuple(o.flatten().tolist()) for o in out}
        assert len(distinct) > 16, cfg


def test_noise_is_per_image() -> None:
    g = torch.Generator().manual_seed(0)
    out = augment_batch(_batch(8), AugmentSpec(noise_std=0.1), g, pixel_scale=2.0)
    diff = out - _batch(8)
    assert not torch.allclose(diff[0], diff[1])
    assert 0.15 < diff.std().item() < 0.25  # 0.1 pixel units * pixel_scale 2


def test_flip_with_probability_one_mirrors_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28)
    out = augment_batch(x, AugmentSpec(hflip=1.0), g)
    assert torch.allclose(out, x.flip(-1), atol=1e-5)


def test_flip_probability_half_flips_some() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 28, 28)
    out = augment_batch(x, AugmentSpec(hflip=0.5), g)
    flipped = [torch.allclose(o, xi.flip(-1), atol=1e-5) for o, xi in zip(out, x, strict=True)]
    same = [torch.allclose(o, xi, atol=1e-5) for o, xi in zip(out, x, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True))
    assert 16 < sum(flipped) < 48


def test_translation_moves_content_and_fills_background() -> None:
    g = torch.Generator().manual_seed(0)
    bg = -0.5
    x = torch.full((64, 1, 28, 28), bg)
    x[:, :, 12:16, 12:16] = 2.0
    out = augment_batch(x, AugmentSpec(translate=0.2), g, background=bg)
    # mass is preserved (the square stays inside) and the border stays background
    assert torch.allclose((out - bg).sum((1, 2, 3)), (x - bg).sum((1, 2, 3)), rtol=0.05)
    assert torch.allclose(out[:, :, 0, :], torch.tensor(bg), atol=1e-5)
    centres = [(o[0] > 0.5).nonzero().float().mean(0) for o in out]
    assert len({tuple(c.round().tolist()) for c in centres}) > 10


def test_seeded_augmentation_is_reproducible() -> None:
    cfg = AugmentSpec(rotation=20, translate=0.1, crop_scale=[0.8, 1.0])
    a = augment_batch(_batch(), cfg, torch.Generator().manual_seed(5))
    b = augment_batch(_batch(), cfg, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
