"""Per-image random augmentation of a whole batch on its device.

torchvision's batched transforms draw one parameter set for the whole batch; here every
image gets its own flip, rotation, zoom, crop and shift, composed into one affine matrix
per image and applied with a single `affine_grid` + `grid_sample`. Amounts follow
torchvision's meaning: `translate` is a fraction of the image size, `crop_scale` the
area fraction of RandomResizedCrop (aspect ratio 3/4..4/3), `rotation` in degrees.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mnist_tui.config.spec import AugmentSpec


def _uniform(
    n: int, lo: float, hi: float, g: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


def affine_matrices(
    n: int, cfg: AugmentSpec, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(n, 2, 3) matrices mapping output to input coordinates in [-1, 1]."""
    one = torch.ones(n, device=device)
    zero = torch.zeros(n, device=device)
    # start from the identity; each step composes another per-image transform
    a, b, c, d = one, zero, zero, one  # linear part [[a, b], [c, d]]
    tx, ty = zero, zero
    if cfg.rotation:
        angle = _uniform(n, -cfg.rotation, cfg.rotation, generator, device) * (math.pi / 180)
        cos, sin = angle.cos(), angle.sin()
        a, b, c, d = cos, -sin, sin, cos
    if cfg.scale != [1.0, 1.0]:
        # zoom s > 1 enlarges the content: sample a smaller input region
        inv = 1.0 / _uniform(n, cfg.scale[0], cfg.scale[1], generator, device)
        a, b, c, d = a * inv, b * inv, c * inv, d * inv
    if cfg.hflip:
        flip = torch.where(torch.rand(n, generator=generator, device=device) < cfg.hflip, -1.0, 1.0)
        a, c = a * flip, c * flip
    if cfg.crop_scale != [1.0, 1.0]:
        area = _uniform(n, cfg.crop_scale[0], cfg.crop_scale[1], generator, device)
        log_r = _uniform(n, math.log(3 / 4), math.log(4 / 3), generator, device)
        w = (area * log_r.exp()).sqrt().clamp(max=1.0)
        h = (area / log_r.exp()).sqrt().clamp(max=1.0)
        cx = _uniform(n, -1, 1, generator, device) * (1 - w)
        cy = _uniform(n, -1, 1, generator, device) * (1 - h)
        # input = crop(w, h, centre) applied after the rest
        a, b, c, d = a * w, b * w, c * h, d * h
        tx, ty = tx * w + cx, ty * h + cy
    if cfg.translate:
        # moving the content by +s means sampling at -s; 2 * fraction in [-1, 1] units
        tx = tx - 2 * _uniform(n, -cfg.translate, cfg.translate, generator, device)
        ty = ty - 2 * _uniform(n, -cfg.translate, cfg.translate, generator, device)
    return torch.stack([torch.stack([a, b, tx], 1), torch.stack([c, d, ty], 1)], 1)


def augment_batch(
    x: torch.Tensor,
    cfg: AugmentSpec,
    generator: torch.Generator | None,
    background: float = 0.0,
    pixel_scale: float = 1.0,
) -> torch.Tensor:
    """Augment a normalised batch (N, C, H, W); returns `x` itself when nothing is on.

    `generator=None` draws from the default generator, which CUDA graphs can capture.
    """
    if not cfg.per_batch:
        return x
    n = x.shape[0]
    geometric = (
        cfg.hflip
        or cfg.rotation
        or cfg.translate
        or cfg.crop_scale != [1.0, 1.0]
        or cfg.scale != [1.0, 1.0]
    )
    if geometric:
        theta = affine_matrices(n, cfg, generator, x.device).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        # grid_sample fills with 0; shift so the fill is the image background instead
        x = F.grid_sample(x - background, grid, align_corners=False) + background
    if cfg.noise_std:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x = x + noise * (cfg.noise_std * pixel_scale)
    return x
