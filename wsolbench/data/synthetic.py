"""A synthetic WSOL set, generated on demand in the CUB layout, with a mask per image.

What makes it a WSOL test rather than a toy: every image holds one object made of several parts
(body, head, tail, legs) in muted, random colours shared by all classes, and one small marker on
the body. Only the marker (its shape and saturated colour, unique per class) decides the class,
while the box and mask cover the whole object, so a classifier can be right while its map covers
only the marker: the failure mode WSOL methods exist to fix. The background holds clutter (muted
lines and blobs), stray object parts (a loose head or leg) and faded, smaller markers of other
classes, which draw maps away from the object.

Determinism: each image comes from ``numpy.random.default_rng([seed, split, class, index])`` and
OpenCV's encoders, so the same parameters give the same bytes. Layout: ``images/``,
``segmentations/`` (0/255 PNG masks), the five CUB txt files and ``synthetic.json`` (parameters).
Boxes are the tight inclusive box of the mask: ``x, y, w, h = x0, y0, x1 - x0, y1 - y0``.

    generate(out, seed=0, classes=8, per_class=48, test_per_class=150, size=64) -> out
    DATASETS.build("synthetic", root=None)   # root None: cached in $WSOLBENCH_CACHE (~/.cache/wsolbench)
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np

from wsolbench.data.cub import CUB
from wsolbench.errors import WsolbenchError
from wsolbench.registry import DATASETS

VERSION = 1  # bump when the images change, so caches of the old generator are not reused
SHAPES = ("disc", "square", "triangle", "cross", "ring", "diamond", "bars", "x")
COLORS = {  # saturated marker colours; bodies and background stay below saturation 0.4
    "red": (230, 30, 30), "green": (30, 190, 40), "blue": (40, 70, 240), "yellow": (240, 220, 20),
    "magenta": (220, 30, 220), "cyan": (20, 210, 230), "orange": (250, 130, 0), "purple": (130, 40, 210),
}
MAX_CLASSES = len(SHAPES) * len(COLORS)
JPEG_QUALITY = 90


def class_marker(label: int) -> tuple[str, str]:
    """(shape, colour) of a class: the first 8 classes differ in both, later ones in the pair."""
    return SHAPES[label % len(SHAPES)], list(COLORS)[(label + label // len(SHAPES)) % len(COLORS)]


def class_name(label: int) -> str:
    shape, color = class_marker(label)
    return f"{label + 1:03d}.{color}_{shape}"


def _muted(rng: np.random.Generator, value=(0.3, 0.8)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0.05, 0.4) * 255, rng.uniform(*value) * 255]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _paint(canvas: np.ndarray, draw, color, alpha: float = 1.0) -> None:
    """Blend ``color`` into ``canvas`` where ``draw(layer, 255, cv2.LINE_AA)`` paints an anti-aliased layer."""
    layer = np.zeros(canvas.shape[:2], np.uint8)
    draw(layer, 255, cv2.LINE_AA)
    a = alpha * layer[..., None].astype(np.float32) / 255
    canvas *= 1 - a
    canvas += a * np.asarray(color, np.float32)


def _marker(shape: str, cx: float, cy: float, r: float):
    """A drawing function of a marker shape of half-size r centred at (cx, cy)."""
    c, ri, t = (int(round(cx)), int(round(cy))), max(1, int(round(r))), max(1, int(round(0.55 * r)))
    corners = {
        "square": [(-1, -1), (1, -1), (1, 1), (-1, 1)],
        "triangle": [(0, -1.15), (1.1, 0.9), (-1.1, 0.9)],
        "diamond": [(0, -1.25), (1.25, 0), (0, 1.25), (-1.25, 0)],
    }

    def draw(img, value, line):
        if shape == "disc":
            cv2.circle(img, c, ri, value, -1, line)
        elif shape == "ring":
            cv2.circle(img, c, ri, value, max(1, int(round(0.45 * r))), line)
        elif shape in corners:
            pts = np.array([[cx + dx * r, cy + dy * r] for dx, dy in corners[shape]]).round().astype(np.int32)
            cv2.fillPoly(img, [pts], value, line)
        elif shape == "cross":
            cv2.line(img, (c[0] - ri, c[1]), (c[0] + ri, c[1]), value, t, line)
            cv2.line(img, (c[0], c[1] - ri), (c[0], c[1] + ri), value, t, line)
        elif shape == "x":
            for s in (-1, 1):
                cv2.line(img, (c[0] - ri, c[1] - s * ri), (c[0] + ri, c[1] + s * ri), value, t, line)
        elif shape == "bars":
            for dx in (-0.6, 0.6):
                x = int(round(cx + dx * r))
                cv2.line(img, (x, c[1] - ri), (x, c[1] + ri), value, max(1, int(round(0.45 * r))), line)

    return draw


def _object_parts(rng: np.random.Generator, cx: float, cy: float, u: float):
    """Drawing functions of legs, tail, body and head around (cx, cy); the marker's spot; the head radius."""
    a = rng.uniform(10, 15) * u  # body half-length
    b = a * rng.uniform(0.5, 0.7)
    angle = rng.uniform(-25, 25)
    face = rng.choice((-1, 1))
    ca, sa = np.cos(np.radians(angle)), np.sin(np.radians(angle))

    def at(t, s):  # body frame (along, across) -> image
        return cx + t * ca - s * sa, cy + t * sa + s * ca

    rh = b * rng.uniform(0.6, 0.8)
    hx, hy = at(face * (a + 0.6 * rh), -0.3 * b)
    tail = np.array([at(-face * 0.8 * a, -0.35 * b), at(-face * 0.8 * a, 0.35 * b),
                     at(-face * (a + rng.uniform(0.5, 0.9) * b), rng.uniform(-0.9, 0.3) * b)]).round().astype(np.int32)
    legs = [(at(t * a, 0.7 * b), rng.uniform(0.7, 1.1) * b) for t in (-0.4, 0.35)]
    leg_w = max(1, int(round(1.6 * u)))

    def body(img, v, line):
        cv2.ellipse(img, (int(round(cx)), int(round(cy))), (int(round(a)), int(round(b))), angle, 0, 360, v, -1, line)

    def head(img, v, line):
        cv2.circle(img, (int(round(hx)), int(round(hy))), int(round(rh)), v, -1, line)

    def tail_fn(img, v, line):
        cv2.fillPoly(img, [tail], v, line)

    def legs_fn(img, v, line):
        for (lx, ly), length in legs:
            cv2.line(img, (int(round(lx)), int(round(ly))), (int(round(lx)), int(round(ly + length))), v, leg_w, line)

    spot = at(rng.uniform(-0.35, 0.35) * a, rng.uniform(-0.2, 0.2) * b)
    return (legs_fn, tail_fn, body, head), spot, rh


def render(rng: np.random.Generator, label: int, num_classes: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, uint8 mask 1 object / 0 background) of one sample of class ``label``."""
    u = size / 64
    # background: a gradient between two muted colours, then clutter
    t = np.linspace(0, 1, size, dtype=np.float32)
    ramp = t[None, :] if rng.random() < 0.5 else t[:, None]
    canvas = np.broadcast_to(_muted(rng) * (1 - ramp[..., None]) + _muted(rng) * ramp[..., None], (size, size, 3)).copy()
    for _ in range(rng.integers(4, 8)):
        p, q = rng.uniform(0, size, 2), rng.uniform(0, size, 2)
        if rng.random() < 0.5:
            draw = lambda img, v, ln, p=p, q=q: cv2.line(img, tuple(p.astype(int)), tuple(q.astype(int)), v, max(1, int(2 * u)), ln)
        else:
            ax = tuple(int(v) for v in rng.uniform(2, 9, 2) * u)
            draw = lambda img, v, ln, p=p, ax=ax: cv2.ellipse(img, tuple(p.astype(int)), ax, 0, 0, 360, v, -1, ln)
        _paint(canvas, draw, _muted(rng), rng.uniform(0.3, 0.7))

    # the object: its geometry drawn once far from the borders, then placed fully inside the image
    geometry_seed = int(rng.integers(2**63))
    pad = 2 * size
    parts, _, _ = _object_parts(np.random.default_rng(geometry_seed), pad, pad, u)
    probe = np.zeros((4 * size, 4 * size), np.uint8)
    for part in parts:
        part(probe, 1, cv2.LINE_8)
    ys, xs = np.nonzero(probe)
    x0 = int(rng.integers(0, max(1, size - (xs.max() - xs.min())))) if xs.max() - xs.min() < size else 0
    y0 = int(rng.integers(0, max(1, size - (ys.max() - ys.min())))) if ys.max() - ys.min() < size else 0
    dx, dy = x0 - xs.min(), y0 - ys.min()
    parts, spot, rh = _object_parts(np.random.default_rng(geometry_seed), pad + dx, pad + dy, u)
    x1, y1 = xs.max() + dx, ys.max() + dy

    # distractors away from the object: faded small markers of other classes, one stray part
    r = rng.uniform(3.6, 4.4) * u
    others = [c for c in range(num_classes) if c != label]
    for k in range(rng.integers(1, 3) + 1):
        for _ in range(30):
            x, y = rng.uniform(r, size - r, 2)
            if not (x0 - 2 * r < x < x1 + 2 * r and y0 - 2 * r < y < y1 + 2 * r):
                break
        else:
            continue
        if k == 0:
            draw = lambda img, v, ln, x=x, y=y: cv2.circle(img, (int(x), int(y)), int(round(rh * 0.8)), v, -1, ln)
            _paint(canvas, draw, _muted(rng), 0.9)
        elif others:
            shape, color = class_marker(int(rng.choice(others)))
            _paint(canvas, _marker(shape, x, y, 0.8 * r), COLORS[color], 0.65)

    body_color = _muted(rng, (0.25, 0.7))
    mask = np.zeros((size, size), np.uint8)
    for part in parts:
        _paint(canvas, part, body_color * rng.uniform(0.85, 1.15), 1.0)
    shape, color = class_marker(label)
    marker = _marker(shape, *spot, r)
    _paint(canvas, marker, COLORS[color])
    for part in (*parts, marker):  # the marker is a part of the object: the mask covers it too
        part(mask, 1, cv2.LINE_8)
    canvas += rng.normal(0, 4, canvas.shape).astype(np.float32)
    return canvas.round().clip(0, 255).astype(np.uint8), mask


# The defaults are the main job's set (docs/sweeps.md): 48 train images per class, of which the reader
# holds out a third as val (16 per class, 128 images with boxes), and 150 test images per class: 1200 test
# images put the binomial 95% half-width of any accuracy at most 1.96 * sqrt(0.25 / 1200) = 2.8 points.
# Test images cost only evaluation (about 10 ms each on one CPU core); the train split sets the training time.
def parameters(seed: int = 0, classes: int = 8, per_class: int = 48, test_per_class: int | None = 150,
               size: int = 64) -> dict:
    """The generator's parameters, checked; ``per_class`` train and ``test_per_class`` test images per class
    (None: ``per_class // 2``)."""
    test_per_class = per_class // 2 if test_per_class is None else test_per_class
    if not 2 <= classes <= MAX_CLASSES:
        raise WsolbenchError(f"synthetic: classes must be 2..{MAX_CLASSES}, got {classes}")
    if per_class < 2 or test_per_class < 1:
        raise WsolbenchError(f"synthetic: need per_class >= 2 and test_per_class >= 1, got {per_class} and {test_per_class}")
    if size < 32:
        raise WsolbenchError(f"synthetic: size must be at least 32 pixels, got {size}")
    return dict(generator="wsolbench-synthetic", version=VERSION, seed=seed, classes=classes,
                per_class=per_class, test_per_class=test_per_class, size=size)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_all(folder: Path, params: dict) -> None:
    """Every file of the dataset into ``folder`` (a fresh temporary folder)."""
    lines = {k: [] for k in ("images", "image_class_labels", "train_test_split", "bounding_boxes")}
    image_id = 0
    for split_code, (is_train, count) in enumerate(((1, params["per_class"]), (0, params["test_per_class"]))):
        for label in range(params["classes"]):
            name = class_name(label)
            for j in range(count):
                rng = np.random.default_rng([params["seed"], split_code, label, j])
                image, mask = render(rng, label, params["classes"], params["size"])
                image_id += 1
                rel = f"{name}/{name[4:]}_{'train' if is_train else 'test'}_{j:04d}"
                ok1, jpg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                ok2, png = cv2.imencode(".png", mask * 255)
                assert ok1 and ok2
                _write(folder / "images" / f"{rel}.jpg", jpg.tobytes())
                _write(folder / "segmentations" / f"{rel}.png", png.tobytes())
                ys, xs = np.nonzero(mask)
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max(), ys.max()
                lines["images"].append(f"{image_id} {rel}.jpg")
                lines["image_class_labels"].append(f"{image_id} {label + 1}")
                lines["train_test_split"].append(f"{image_id} {is_train}")
                lines["bounding_boxes"].append(f"{image_id} {x0:.1f} {y0:.1f} {x1 - x0:.1f} {y1 - y0:.1f}")
    lines["classes"] = [f"{c + 1} {class_name(c)}" for c in range(params["classes"])]
    for name, text in lines.items():
        (folder / f"{name}.txt").write_text("\n".join(text) + "\n")
    (folder / "synthetic.json").write_text(json.dumps(params, indent=2, sort_keys=True) + "\n")


def _matches(folder: Path, params: dict) -> bool:
    try:
        return json.loads((folder / "synthetic.json").read_text()) == params
    except (OSError, ValueError):
        return False


def generate(out, **options) -> Path:
    """Write the set into ``out`` atomically (temp folder, then rename); reuse it when already complete."""
    params = parameters(**options)
    out = Path(out).expanduser()
    if out.exists() and _matches(out, params):
        return out
    if out.exists() and any(out.iterdir()):
        raise WsolbenchError(f"synthetic: {out} exists and is not this synthetic set; pick another folder or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        _write_all(tmp, params)
        os.replace(tmp, out)  # an empty ``out`` is replaced; a complete one (another process) makes this fail
    except OSError:
        if not _matches(out, params):
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def cache_dir() -> Path:
    return Path(os.environ.get("WSOLBENCH_CACHE") or "~/.cache/wsolbench").expanduser()


def cached(**options) -> Path:
    """The cache folder of these parameters, generated on first use."""
    p = parameters(**options)
    name = f"synthetic-v{VERSION}-seed{p['seed']}-c{p['classes']}-n{p['per_class']}-t{p['test_per_class']}-px{p['size']}"
    return generate(cache_dir() / name, **options)


@DATASETS.register("synthetic", description="Synthetic WSOL set (parts, discriminative marker, distractors), CUB layout + masks")
class Synthetic(CUB):
    """CUB reader over a generated folder.

    Val with boxes: a seeded hold-out (``numpy.random.default_rng(seed)``) of ``round(val_fraction * per_class)``
    images of each class's generated train images, removed from train; test images are rendered from
    their own split code, so the three splits are disjoint. Every image has a box and a mask.
    """

    name = "synthetic"
    default_protocol = "cub"

    def __init__(self, root=None, seed: int = 0, classes: int = 8, per_class: int = 48, test_per_class: int | None = 150,
                 size: int = 64, val_fraction: float = 1 / 3):
        if root is None:
            root = cached(seed=seed, classes=classes, per_class=per_class, test_per_class=test_per_class, size=size)
        elif not (Path(root) / "synthetic.json").is_file():
            raise WsolbenchError(f"synthetic: {root} is not a generated set (no synthetic.json); make one with "
                                 f"'wsolbench data synth --out {root}' or leave root unset to use the cache")
        super().__init__(root, val_fraction=val_fraction, seed=seed)
