"""Generate a small image-folder dataset: coloured shapes, 32x32 RGB PNGs.

    python examples/make_image_folder.py examples/data/shapes

writes ``train/<class>/*.png`` and ``test/<class>/*.png`` (torchvision's ImageFolder
layout) and a ``classes.txt``; `examples/shapes.toml` trains LeNet-5 on it.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross")
SIZE = 32


def draw(kind: str, rng: random.Random) -> Image.Image:
    """One shape of a random colour, size and place on a dark, noisy background."""
    bg = tuple(rng.randrange(0, 60) for _ in range(3))
    img = Image.new("RGB", (SIZE, SIZE), bg)
    d = ImageDraw.Draw(img)
    colour = tuple(rng.randrange(120, 256) for _ in range(3))
    r = rng.randrange(7, 12)
    cx, cy = rng.randrange(r + 1, SIZE - r - 1), rng.randrange(r + 1, SIZE - r - 1)
    if kind == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    else:
        w = max(2, r // 3)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=colour)
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=colour)
    for _ in range(20):  # a little speckle so the task is not trivial
        img.putpixel((rng.randrange(SIZE), rng.randrange(SIZE)), colour)
    return img


def make(root: Path, train: int = 150, test: int = 40, seed: int = 0) -> Path:
    """`train` and `test` images per class under `root`."""
    rng = random.Random(seed)
    for split, count in (("train", train), ("test", test)):
        for kind in CLASSES:
            folder = root / split / kind
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw(kind, rng).save(folder / f"{i:04d}.png")
    (root / "classes.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, nargs="?", default=Path("examples/data/shapes"))
    parser.add_argument("--train", type=int, default=150, help="training images per class")
    parser.add_argument("--test", type=int, default=40, help="test images per class")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make(args.root, args.train, args.test, args.seed)
    print(f"wrote {args.root}: {len(CLASSES)} classes, {args.train} + {args.test} images each")


if __name__ == "__main__":
    main()
