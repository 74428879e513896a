"""Image loading and the train/test transforms (boxes mapped with the image, see ``boxes.py``).

    ImageDataset(samples, transform)[i] -> (image 3 x H x W float32, ImageNet-normalised, label, i)
    train_transform(size=224, resize=256)  # resize to resize x resize, random size x size crop, random flip
    test_transform(size=224)               # plain resize to size x size (no crop: maps cover the whole image)
    test_transform(size, tencrop=True)     # 11 x 3 x size x size: that view, then the ten crops (TenCropTransform)
    transform(image, boxes) -> (tensor, boxes mapped into the output image)
    load_image(path) -> RGB uint8 H x W x 3
    load_mask(sample) -> uint8 H x W at original size: 1 object / 0 background (255 = ignore is part of
        the contract, but no built-in reader has ignore regions)

Randomness comes from torch's generator, so DataLoader workers (seeded by torch) and
``torch.manual_seed`` make training crops reproducible.
"""
from __future__ import annotations

import os
from typing import Sequence

import cv2
import numpy as np
import torch

from wsolbench.data.base import Sample
from wsolbench.data.boxes import as_boxes, crop_boxes, flip_boxes, resize_boxes
from wsolbench.errors import WsolbenchError

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
cv2.setNumThreads(1)  # parallelism comes from DataLoader workers; cv2's own threads would oversubscribe


def default_num_workers() -> int:
    """DataLoader workers: one core is left to the training process, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def load_image(path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise WsolbenchError(f"{path}: missing or unreadable image (run 'wsolbench data check')")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def load_mask(sample: Sample) -> np.ndarray:
    """The sample's mask at original size: grey >= 128 is object (CUB segmentations are 0..255 votes)."""
    if sample.mask_path is None:
        raise WsolbenchError(f"image {sample.image_id} has no mask")
    grey = cv2.imread(str(sample.mask_path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise WsolbenchError(f"{sample.mask_path}: missing or unreadable mask")
    return (grey >= 128).astype(np.uint8)


# (x / 255 - mean) / std of every uint8 value x and channel, in the float32 steps of the plain formula: a lookup
# gives the same bits at a third of the cost, written channel-first with no transpose copy
_NORMALISED = ((np.arange(256, dtype=np.float32)[:, None] / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).T.copy()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 RGB -> 3 x H x W float32, ImageNet-normalised."""
    out = np.empty((3, *image.shape[:2]), np.float32)
    for c in range(3):
        np.take(_NORMALISED[c], image[..., c], out=out[c])
    return torch.from_numpy(out)


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    shrink = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class EvalTransform:
    def __init__(self, size: int = 224):
        self.size = size

    def __call__(self, image: np.ndarray, boxes=()) -> tuple[torch.Tensor, np.ndarray]:
        out = (self.size, self.size)
        return to_tensor(_resize(image, out)), resize_boxes(boxes, image.shape[:2], out)


class TrainTransform:
    def __init__(self, size: int = 224, resize: int = 256, flip: bool = True):
        if resize < size:
            raise WsolbenchError(f"train transform: resize ({resize}) must be at least the crop size ({size})")
        self.size, self.resize, self.flip = size, resize, flip

    def __call__(self, image: np.ndarray, boxes=()) -> tuple[torch.Tensor, np.ndarray]:
        big = (self.resize, self.resize)
        image, boxes = _resize(image, big), resize_boxes(boxes, image.shape[:2], big)
        top, left = (int(v) for v in torch.randint(0, self.resize - self.size + 1, (2,)))
        image = image[top:top + self.size, left:left + self.size]
        boxes = crop_boxes(boxes, left, top, (self.size, self.size))
        if self.flip and bool(torch.rand(()) < 0.5):
            image, boxes = image[:, ::-1], flip_boxes(boxes, self.size)
        return to_tensor(image), boxes


class TenCropTransform:
    """The full view (as ``EvalTransform``: the maps and boxes come from it) and the ten crops that classify.

    The crops are those of the ACoL / SPG / I2C evaluation scripts' ten-crop switch, scaled to ``size``: the
    image resized to ``resize`` x ``resize`` (256 for 224: ``size * 256 / 224``, CUB and ILSVRC alike), its
    four corner crops and centre crop of ``size`` x ``size``, then the same five of its horizontal flip
    (torchvision's ``TenCrop`` order). Returns an 11 x 3 x size x size tensor: view 0 is the full view."""

    def __init__(self, size: int = 224, resize: int | None = None):
        self.full = EvalTransform(size)
        self.size, self.resize = size, resize or round(size * 256 / 224)

    def __call__(self, image: np.ndarray, boxes=()) -> tuple[torch.Tensor, np.ndarray]:
        full, boxes = self.full(image, boxes)
        big = _resize(image, (self.resize, self.resize))
        s, r = self.size, self.resize
        mid = int(round((r - s) / 2.0))
        corners = [(0, 0), (0, r - s), (r - s, 0), (r - s, r - s), (mid, mid)]  # top-left, top-right, ..., centre
        crops = [view[t:t + s, left:left + s] for view in (big, big[:, ::-1]) for t, left in corners]
        return torch.stack([full, *(to_tensor(c) for c in crops)]), boxes


def train_transform(size: int = 224, resize: int = 256) -> TrainTransform:
    return TrainTransform(size, resize)


def test_transform(size: int = 224, tencrop: bool = False) -> EvalTransform | TenCropTransform:
    return TenCropTransform(size) if tencrop else EvalTransform(size)


class ImageDataset(torch.utils.data.Dataset):
    def __init__(self, samples: Sequence[Sample], transform):
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        image, _ = self.transform(load_image(s.path), as_boxes(s.boxes))
        return image, s.label, i
