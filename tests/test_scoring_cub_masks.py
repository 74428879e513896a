"""``eval --save-maps`` keeps masks of different sizes (CUB), so ``score`` reproduces PxAP from the file."""
import json

import numpy as np
import pytest

from test_data_cub import CUB_ROWS, write_cub
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import train_and_evaluate


# three training images per class: one held out for val, two to train on
ROWS = CUB_ROWS + [(10 + c, f"{name}/extra_{c}.jpg", c + 1, 1, (36, 40), [(2.0, 2.0, 20.0, 20.0)])
                   for c, name in enumerate(["001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross"])]


def test_saved_maps_of_a_cub_run_keep_its_masks_and_pxap(tmp_path, run_cli):
    root = write_cub(tmp_path / "CUB_200_2011", ROWS, masks=True)  # masks at each image's size: 32x32, 30x34, 41x41
    cfg = RunConfig(method="cam", backbone="test_resnet", output_stride=8, dataset="cub", data_root=str(root),
                    epochs=1, batch_size=2, lr=0.01, input_size=32, out=str(tmp_path / "runs"),
                    extra_protocols=["wsoleval"], dataset_options={"val_fraction": 0.34})
    run_dir = train_and_evaluate(cfg, show_progress=False)
    code, out, err = run_cli("eval", run_dir, "--protocol", "wsoleval", "--save-maps", "--policy", "test-optimal")
    assert code == 0, out + err
    evaluated = json.loads((run_dir / "eval-wsoleval.json").read_text())
    assert evaluated["n_masks"] == 3

    with np.load(run_dir / "maps-test.npz") as saved:
        assert len({m.shape for m in saved["masks"]}) == 1  # one array, padded
        sizes = [tuple(s) for s in saved["mask_sizes"]]
    assert sorted(sizes) == [(30, 34), (32, 32), (41, 41)]
    code, out, err = run_cli("score", run_dir / "maps-test.npz", "--protocol", "wsoleval", "--json")
    assert code == 0, out + err
    scored = json.loads(out)
    assert scored["n_masks"] == 3 and scored["pxap"] == pytest.approx(evaluated["pxap"], abs=1e-9)
