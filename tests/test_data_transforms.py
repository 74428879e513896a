"""Box helpers and transforms: boxes follow the pixels exactly through resize, crop and flip."""
import cv2
import numpy as np
import pytest
import torch

from test_data_cub import CUB_ROWS, write_cub
from wsolbench.data import boxes as B
from wsolbench.data import loading
from wsolbench.registry import DATASETS


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max(), ys.max()]


def _rect_image(size, box, value=255):
    image = np.zeros((*size, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1 + 1, x0:x1 + 1] = value
    return image


def test_flip_and_crop_are_exact_on_pixels():
    mask = _rect_image((30, 40), (5, 7, 17, 20))[..., 0]
    assert B.flip_boxes([_bbox(mask)], 40).tolist() == [_bbox(mask[:, ::-1])]
    assert B.flip_boxes(B.flip_boxes([[1.5, 2, 9, 3]], 40), 40).tolist() == [[1.5, 2, 9, 3]]
    crop = mask[10:30, 8:30]
    assert B.crop_boxes([_bbox(mask)], 8, 10, crop.shape).tolist() == [_bbox(crop)]
    # a box left outside the crop is dropped; one cut by it is clipped to the crop
    assert B.crop_boxes([[0, 0, 3, 3], [20, 20, 39, 29]], 8, 10, (15, 22)).tolist() == [[12, 10, 21, 14]]


@pytest.mark.parametrize("dst", [(60, 80), (15, 20), (45, 24)])
def test_resize_matches_a_resized_mask(dst):
    """Integer scale factors: nearest-neighbour resize of the mask gives exactly the mapped box."""
    mask = _rect_image((30, 40), (5, 7, 17, 20))[..., 0]
    resized = cv2.resize(mask, dst[::-1], interpolation=cv2.INTER_AREA) >= 128
    mapped = B.resize_boxes([_bbox(mask)], (30, 40), dst)[0]
    assert np.abs(mapped - np.array(_bbox(resized))).max() <= 0.75  # a fraction of an output pixel
    if dst == (60, 80):  # scale 2: pixel i covers output 2i, 2i + 1
        assert mapped.tolist() == [10, 14, 35, 41]


def test_train_transform_moves_boxes_with_the_pixels():
    box = (20, 30, 60, 50)
    image = _rect_image((80, 100), box)
    transform = loading.train_transform(size=48, resize=64)
    torch.manual_seed(0)
    for _ in range(12):
        tensor, (mapped,) = transform(image, [box])
        assert tensor.shape == (3, 48, 48) and tensor.dtype == torch.float32
        bright = (tensor[0] > 0).numpy()  # normalised: the white object is positive, the black background negative
        assert np.abs(mapped - np.array(_bbox(bright))).max() <= 1.0
    flips = set()
    torch.manual_seed(1)
    for _ in range(12):
        flips.add(bool(transform(_rect_image((64, 64), (0, 0, 20, 63)), [(0, 0, 20, 63)])[1][0, 0] > 20))
    assert flips == {False, True}  # the flip happens, at random


def test_test_transform_resizes_and_normalises():
    image = np.full((30, 50, 3), 128, np.uint8)
    tensor, mapped = loading.test_transform(32)(image, [(0, 0, 49, 29)])
    expected = (128 / 255 - loading.IMAGENET_MEAN) / loading.IMAGENET_STD
    assert tensor.shape == (3, 32, 32)
    assert torch.allclose(tensor[:, 5, 5], torch.tensor(expected), atol=1e-5)
    assert mapped.tolist() == [[0, 0, 31, 31]]


def test_image_dataset_and_mask(tmp_path):
    root = write_cub(tmp_path / "cub", masks=True)
    ds = DATASETS.build("cub", root=root, val_fraction=0.0)
    samples = ds.samples("train")
    data = loading.ImageDataset(samples, loading.test_transform(32))
    image, label, index = data[3]
    assert image.shape == (3, 32, 32) and (label, index) == (samples[3].label, 3)
    raw = cv2.cvtColor(cv2.imread(str(samples[3].path)), cv2.COLOR_BGR2RGB)
    expected, _ = loading.test_transform(32)(raw)
    assert torch.equal(image, expected)
    mask = loading.load_mask(samples[0])
    assert mask.dtype == np.uint8 and mask.shape == samples[0].size and _bbox(mask) == [3, 2, 11, 9]
    loader = torch.utils.data.DataLoader(data, batch_size=3, num_workers=0)
    images, labels, indices = next(iter(loader))
    assert images.shape == (3, 3, 32, 32) and indices.tolist() == [0, 1, 2]


def test_unreadable_image_is_a_clear_error(tmp_path):
    root = write_cub(tmp_path / "cub")
    (root / "images" / CUB_ROWS[0][1]).write_bytes(b"not an image")
    ds = DATASETS.build("cub", root=root, val_fraction=0.0)
    with pytest.raises(Exception, match="unreadable image"):
        loading.ImageDataset(ds.samples("train"), loading.test_transform(32))[0]


def test_to_tensor_is_the_normalisation_formula_bit_for_bit():
    from wsolbench.data.loading import IMAGENET_MEAN, IMAGENET_STD, to_tensor

    image = np.random.default_rng(3).integers(0, 256, (23, 31, 3), dtype=np.uint8)
    formula = ((image.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    assert torch.equal(to_tensor(image), torch.from_numpy(np.ascontiguousarray(formula)))
    assert torch.equal(to_tensor(image[:, ::-1]), torch.from_numpy(np.ascontiguousarray(formula[:, :, ::-1])))
