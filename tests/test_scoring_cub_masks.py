"""``eval --save-maps`` keeps masks of different sizes (CUB), so ``score`` reproduces PxAP from the file; and
on a real run, the scoring settings: the box search is recorded and changes no number, and 1 or 2 scoring
workers write the same bytes."""
import json

import numpy as np
import pytest

from test_data_cub import CUB_ROWS, write_cub
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import train_and_evaluate

# three training images per class: one held out for val, two to train on
ROWS = CUB_ROWS + [(10 + c, f"{name}/extra_{c}.jpg", c + 1, 1, (36, 40), [(2.0, 2.0, 20.0, 20.0)])
                   for c, name in enumerate(["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"])]


@pytest.fixture(scope="module")
def cub_run(tmp_path_factory):
    """A tiny run on a CUB layout whose masks have each image's size (test: 32x32, 30x34, 41x41), scored with
    the reference box search on one worker."""
    tmp = tmp_path_factory.mktemp("cub")
    root = write_cub(tmp / "CUB_200_2011", ROWS, masks=True)
    cfg = RunConfig(method="cam", backbone="test_resnet", output_stride=8, dataset="cub", data_root=str(root),
                    epochs=1, batch_size=2, lr=0.01, input_size=32, out=str(tmp / "runs"), extra_protocols=["wsoleval"],
                    dataset_options={"val_fraction": 0.34}, box_search="reference", score_workers=1)
    return train_and_evaluate(cfg, show_progress=False)


def test_saved_maps_of_a_cub_run_keep_its_masks_and_pxap(cub_run, run_cli):
    code, out, err = run_cli("eval", cub_run, "--protocol", "wsoleval", "--save-maps", "--policy", "test-optimal")
    assert code == 0, out + err
    evaluated = json.loads((cub_run / "eval-wsoleval.json").read_text())
    assert evaluated["n_masks"] == 3

    with np.load(cub_run / "maps-test.npz") as saved:
        assert len({m.shape for m in saved["masks"]}) == 1  # one array, padded
        sizes = [tuple(s) for s in saved["mask_sizes"]]
    assert sorted(sizes) == [(30, 34), (32, 32), (41, 41)]
    code, out, err = run_cli("score", cub_run / "maps-test.npz", "--protocol", "wsoleval", "--json")
    assert code == 0, out + err
    scored = json.loads(out)
    assert scored["n_masks"] == 3 and scored["pxap"] == pytest.approx(evaluated["pxap"], abs=1e-9)


def test_box_search_and_workers_change_no_byte_of_a_runs_numbers(cub_run, run_cli):
    trained = json.loads((cub_run / "metrics.json").read_text())
    assert trained["config"]["box_search"] == "reference"  # the run's setting, recorded with its numbers
    written = {}
    # eval keeps the run's box search unless told otherwise, as it keeps its protocol
    for options in (("--box-search", "fast", "--workers", "1"), ("--box-search", "fast", "--workers", "2"), ("--workers", "2")):
        code, out, err = run_cli("eval", cub_run, *options)
        assert code == 0, out + err
        written[options] = {name: (cub_run / name).read_bytes() for name in ("eval-cub.json", "per-image-cub.npz")}
    one, two, reference = written.values()
    assert one == two  # metrics and per-image records: the same bytes for 1 and 2 workers
    fast, ref = (json.loads(w["eval-cub.json"]) for w in (one, reference))
    assert (fast["config"].pop("box_search"), ref["config"].pop("box_search")) == ("fast", "reference")
    assert fast == ref and fast["gt_known_loc"] == trained["gt_known_loc"]
    assert one["per-image-cub.npz"] == reference["per-image-cub.npz"]
