"""``wsolbench show`` / ``compare`` on two tiny trained runs: real PNGs of the stated size, boxes drawn exactly
as the protocol scored them at the run's threshold, one-line errors for bad run folders."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from wsolbench import finished_run as F
from wsolbench import pictures as P
from wsolbench.engine import rundir as R
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import train_and_evaluate


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """cam under the paper protocol (original pixels), acol under wsoleval (224x224, all regions)."""
    from wsolbench.data.synthetic import generate

    root = tmp_path_factory.mktemp("show")
    synth = generate(root / "synth", classes=4, per_class=8, test_per_class=3, size=32)

    def tiny(method, **kw):
        cfg = RunConfig(method=method, backbone="test_resnet", output_stride=8, dataset="synthetic",
                        data_root=str(synth), epochs=1, batch_size=8, lr=0.01, input_size=32,
                        out=str(root / "runs"), device="cpu", **kw)
        return train_and_evaluate(cfg, show_progress=False)

    return tiny("cam"), tiny("acol", method_settings={"head_width": 16}, protocol="wsoleval")


def png_size(path):
    with Image.open(path) as im:
        im.verify()  # a complete, valid PNG
    with Image.open(path) as im:
        return im.format, im.size, np.asarray(im.convert("RGB"))


def has_color(pixels, rgb):
    return bool((pixels == np.array(rgb, np.uint8)).all(axis=-1).any())


def one_line_error(code, err, *fragments):
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err


def test_show_writes_the_grid_and_the_curves(runs, run_cli):
    cam, _ = runs
    code, out, err = run_cli("show", cam, "--n", 5, "--device", "cpu")
    assert code == 0, err
    grid, curves = cam / "show-test.png", cam / "curves.png"
    assert f"wrote {grid}" in out and f"wrote {curves}" in out
    # 5 tiles: a near-square grid of ceil(sqrt(5)) = 3 columns and 2 rows, plus the header strip
    w_in, h_in = P.TILE_INCHES
    fmt, size, pixels = png_size(grid)
    assert fmt == "PNG" and size == (round(3 * w_in * P.DPI), round((2 * h_in + P.HEADER_INCHES) * P.DPI))
    assert has_color(pixels, (0, 255, 0)) and has_color(pixels, (255, 0, 0))  # ground truth and predicted boxes
    fmt, size, _ = png_size(curves)
    assert fmt == "PNG" and size == (round(P.CURVES_INCHES[0] * P.DPI), round(P.CURVES_INCHES[1] * P.DPI))
    assert not list(cam.glob(".*.tmp"))  # atomic writes leave no temp file

    # the same seed draws the same images, to the byte; --out moves both files
    code, out, err = run_cli("show", cam, "--n", 5, "--device", "cpu", "--out", cam / "again.png")
    assert code == 0, err
    assert (cam / "again.png").read_bytes() == grid.read_bytes()
    assert (cam / "again-curves.png").read_bytes() == curves.read_bytes()


def test_image_choice_is_seeded():
    assert P.pick_images(12, 5, seed=0) == P.pick_images(12, 5, seed=0)
    assert P.pick_images(12, 5, seed=0) != P.pick_images(12, 5, seed=1)
    assert P.pick_images(12, 50, seed=3) == list(range(12))  # more than there are: all of them
    chosen = P.pick_images(12, 5, seed=0)
    assert len(set(chosen)) == 5 and all(0 <= i < 12 for i in chosen)


@pytest.mark.parametrize("which", [0, 1], ids=["cub", "wsoleval"])
def test_drawn_boxes_are_the_scored_boxes_at_the_run_threshold(runs, which):
    """Every test image drawn: its boxes are the protocol's own at metrics["threshold"] (found by the full
    threshold sweep the accumulator uses), and the tiles' IoU >= 0.5 count gives the run's GT-known Loc."""
    from wsolbench.data.loading import ImageDataset, test_transform
    from wsolbench.engine.evaluate import make_loader, predict
    from wsolbench.protocols.level_boxes import threshold_boxes
    from wsolbench.protocols.scoremaps import to_uint8

    run = F.load_run(runs[which], device="cpu")
    metrics = json.loads((runs[which] / R.METRICS).read_text())
    protocol = run.protocol
    assert protocol.name == metrics["protocol"] == ("cub", "wsoleval")[which]
    samples = run.samples("test")
    tiles = F.make_tiles(run, "test", list(range(len(samples))))

    # the raw maps again, through the engine's own evaluation loader
    loader = make_loader(ImageDataset(samples, test_transform(32)), list(range(len(samples))), 8, 0)
    raw = np.concatenate([maps for maps, *_ in predict(run.setup.method, loader, run.setup.device)])
    t = int(np.flatnonzero(protocol.thresholds == metrics["threshold"])[0])
    i05 = protocol.iou_thresholds.index(0.5)
    hits = 0
    for tile, sample, raw_map in zip(tiles, samples, raw):
        h, w = sample.size
        space = (224, 224) if which else (h, w)
        assert tile.image.shape == (*space, 3) and tile.heat.shape == space
        u8 = to_uint8(protocol.prepare_map(raw_map, h, w))
        sweep = threshold_boxes(u8, protocol.thresholds, protocol.multi_contour).at_threshold(t)
        # the same boxes (all regions under wsoleval: their order does not matter to the score)
        assert sorted(map(tuple, tile.pred.tolist())) == sorted(map(tuple, protocol.boxes_in_convention(sweep, *space).tolist()))
        np.testing.assert_array_equal(tile.gt, protocol.check_boxes(sample.boxes, h, w, 0))
        gt_hit = protocol.hits(raw_map, h, w, tile.gt)[i05, t]
        assert gt_hit == (tile.iou >= 0.5)
        hits += gt_hit
    assert 100.0 * hits / len(samples) == pytest.approx(metrics["gt_known_loc"])


def test_compare_puts_two_runs_side_by_side(runs, run_cli, tmp_path):
    cam, acol = runs
    out = tmp_path / "pair.png"
    code, stdout, err = run_cli("compare", cam, acol, "--n", 3, "--out", out, "--device", "cpu")
    assert code == 0, err
    assert f"wrote {out}" in stdout
    fmt, size, pixels = png_size(out)
    w_in, h_in = P.TILE_INCHES
    assert fmt == "PNG" and size == (round(2 * w_in * P.DPI), round((3 * h_in + P.HEADER_INCHES) * P.DPI))
    assert has_color(pixels, (0, 255, 0)) and has_color(pixels, (255, 0, 0))


def test_bad_run_folders_give_one_line_errors(runs, run_cli, tmp_path):
    cam, acol = runs
    code, _, err = run_cli("show", tmp_path / "nowhere", "--device", "cpu")
    one_line_error(code, err, "nowhere", "no such run folder")

    unfinished = tmp_path / "unfinished"
    shutil.copytree(cam, unfinished)
    (unfinished / R.METRICS).unlink()
    code, _, err = run_cli("show", unfinished, "--device", "cpu")
    one_line_error(code, err, str(unfinished / R.METRICS), "unfinished")

    no_weights = tmp_path / "no_weights"
    shutil.copytree(cam, no_weights)
    (no_weights / R.CHECKPOINT).unlink()
    code, _, err = run_cli("show", no_weights, "--device", "cpu")
    one_line_error(code, err, str(no_weights / R.CHECKPOINT), "missing")

    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(acol, elsewhere)
    config = json.loads((elsewhere / R.CONFIG).read_text())
    config["dataset"] = "cub"
    (elsewhere / R.CONFIG).write_text(json.dumps(config))
    code, _, err = run_cli("compare", cam, elsewhere, "--device", "cpu")
    one_line_error(code, err, "same dataset", "synthetic", "cub")

    code, _, err = run_cli("show", cam, "--n", 0, "--device", "cpu")
    one_line_error(code, err, "--n must be at least 1")
    code, _, err = run_cli("compare", cam, acol, "--split", "everything", "--device", "cpu")
    one_line_error(code, err, "--split everything", "unknown split")
