"""What a stored run's model predicts on test images (for pictures of samples)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mnist_tui.config.loading import load_spec_file
from mnist_tui.data import device as data_device
from mnist_tui.data import files as data_files
from mnist_tui.data import splits as data_splits
from mnist_tui.errors import StoreError
from mnist_tui.runs.record import RunInfo


@dataclass
class Samples:
    # the original test images, 0..1: rows of grey values, or rows of [r, g, b]
    images: list[list[list[float]]] | list[list[list[list[float]]]]
    predicted: list[int]
    true: list[int]
    classes: tuple[str, ...]
    accuracy: float  # on the whole test set, with these weights


def predict_samples(
    run: RunInfo,
    *,
    count: int = 12,
    mistakes_only: bool = False,
    seed: int = 0,
    data_dir: Path | None = None,
    download: bool = True,
    checkpoint: str = "best",
) -> Samples:
    """Load the run's checkpoint (weights only), predict the test set, pick `count` images."""
    ckpt = run.path / f"{checkpoint}.pt"
    if not ckpt.is_file():
        raise StoreError(f"run {run.id} has no {checkpoint} checkpoint ({ckpt})")
    from mnist_tui.studies.runner import _checkpoint_damage

    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # in our words: torch's would advise weights_only=False
        raise StoreError(
            f"the checkpoint {ckpt} is damaged ({_checkpoint_damage(ckpt, exc)}); nothing "
            "was changed, and the run's metrics and summary are intact"
        ) from None
    spec = load_spec_file(run.spec_path())
    model = spec.build_model()
    weights = state.get("model") if isinstance(state, dict) else None
    try:
        if not isinstance(weights, dict):
            raise KeyError("model")
        model.load_state_dict(weights)
    except (KeyError, RuntimeError, TypeError) as exc:
        what = "has no model weights" if isinstance(exc, KeyError) else "does not fit the model"
        raise StoreError(
            f"the checkpoint {ckpt} {what} in {run.spec_path().name}; nothing was changed"
        ) from None
    model.eval()
    device = torch.device("cpu")
    prepared = data_device.prepare(spec.data, spec.augment, device, data_dir, download)
    raw = data_files.load_raw(spec.data.dataset, data_dir, download)
    with torch.inference_mode():
        preds = torch.cat(
            [
                model(prepared.test_x[i : i + 2048]).argmax(1)
                for i in range(0, len(prepared.test_y), 2048)
            ]
        )
    true = prepared.test_y
    pool = (preds != true).nonzero().flatten() if mistakes_only else torch.arange(len(true))
    g = torch.Generator().manual_seed(seed)
    chosen = pool[torch.randperm(len(pool), generator=g)[:count]].sort().values
    # test_subset picks a stratified subset: map back to the raw images the same way
    if spec.data.test_subset and spec.data.test_subset < len(raw.test_y):
        idx = data_splits.stratified_indices(
            raw.test_y, spec.data.test_subset, spec.data.split_seed + 2
        )
        raw_images = raw.test_x[idx]
    else:
        raw_images = raw.test_x
    return Samples(
        images=_pictures(raw_images[chosen]),
        predicted=preds[chosen].tolist(),
        true=true[chosen].tolist(),
        classes=prepared.classes,
        accuracy=float((preds == true).float().mean()),
    )


MAX_SIDE = 32  # pixels drawn across: 2 images side by side at 80 columns


def _pictures(x: torch.Tensor) -> list[list[list[float]]] | list[list[list[list[float]]]]:
    """(N, C, H, W) uint8 -> grey images (H x W) or colour ones (H x W x [r, g, b])."""
    x = x.float() / 255
    if max(x.shape[2:]) > MAX_SIDE:  # a terminal cell per pixel: shrink large images
        scale = MAX_SIDE / max(x.shape[2:])
        size = (max(1, round(x.shape[2] * scale)), max(1, round(x.shape[3] * scale)))
        x = torch.nn.functional.adaptive_avg_pool2d(x, size)
    if x.shape[1] == 1:
        grey: list[list[list[float]]] = x[:, 0].tolist()
        return grey
    colour: list[list[list[list[float]]]] = x[:, :3].permute(0, 2, 3, 1).tolist()
    return colour
