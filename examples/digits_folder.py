"""A real image folder for the ``folder`` data set: scikit-learn's bundled handwritten digits (UCI "Optical
Recognition of Handwritten Digits", 1,797 greyscale 8x8 images of 10 classes, shipped inside scikit-learn's wheel, no
download) written out as PNGs in torchvision's ``ImageFolder`` layout, ``DIR/train/<digit>/<index>.png``.

    python examples/digits_folder.py ~/digits
    convzoo train vgg --dataset folder --data-dir ~/digits --recipe quick --resize 32

No ``test/`` folder is written: convzoo holds out a stratified ``--test-fraction`` (0.2) of ``train/`` itself.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def write(root: Path) -> int:
    """Every digit as an 8-bit PNG (the data's 0-16 grey levels scaled to 0-255); the number written."""
    digits = load_digits()
    for index, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / "train" / NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image * 255 / 16).astype(np.uint8), mode="L").save(folder / f"{index}.png")
    return len(digits.target)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} DIR")
    print(f"{write(Path(sys.argv[1]))} images written under {sys.argv[1]}/train/")
