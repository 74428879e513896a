"""wsolevaluation metadata reader: prepared splits are read back exactly."""
from test_data_cub import write_image
from wsolbench.registry import DATASETS

# split -> [(path, label, (w, h), boxes)]
SPLITS = {
    "train": [("train/001.Black_footed_Albatross/a.jpg", 0, (50, 40), []),
              ("train/001.Black_footed_Albatross/b.jpg", 0, (30, 30), []),
              ("train/002.Laysan_Albatross/c.jpg", 1, (40, 44), []),
              ("train/002.Laysan_Albatross/g.jpg", 1, (20, 24), [])],
    "val": [("val/002.Laysan_Albatross/d.jpg", 1, (44, 33), [(1, 2, 30, 20)])],
    "test": [("test/001.Black_footed_Albatross/e.jpg", 0, (60, 50), [(0, 0, 59, 49), (10, 11, 20, 30)]),
             ("test/002.Laysan_Albatross/f.jpg", 1, (32, 32), [(3, 4, 5, 6)])],
}


def write_wsoleval(images, metadata, name="CUB"):
    for split, rows in SPLITS.items():
        folder = metadata / name / split
        folder.mkdir(parents=True)
        (folder / "image_ids.txt").write_text("".join(f"{p}\n" for p, *_ in rows))
        (folder / "class_labels.txt").write_text("".join(f"{p},{c}\n" for p, c, *_ in rows))
        (folder / "image_sizes.txt").write_text("".join(f"{p},{w},{h}\n" for p, _, (w, h), _ in rows))
        (folder / "localization.txt").write_text("".join(f"{p},{x0},{y0},{x1},{y1}\n" for p, _, _, b in rows for x0, y0, x1, y1 in b))
        for i, (path, _, (w, h), _) in enumerate(rows):
            write_image(images / path, (h, w), i)


def test_reads_prepared_splits(tmp_path):
    write_wsoleval(tmp_path / "dataset" / "CUB", tmp_path / "metadata")
    # DATASETS.get(...).build: Registry.build's own first parameter is also called name
    ds = DATASETS.get("wsoleval").build(root=tmp_path / "dataset" / "CUB", metadata=tmp_path / "metadata", name="CUB")
    assert (ds.name, ds.num_classes, ds.default_protocol) == ("wsoleval-CUB", 2, "wsoleval")
    assert ds.class_names == ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    for split, rows in SPLITS.items():
        got = ds.samples(split)
        assert [s.image_id for s in got] == [p for p, *_ in rows]
        for s, (path, label, (w, h), boxes) in zip(got, rows):
            assert s.path == tmp_path / "dataset" / "CUB" / path
            assert (s.label, s.size, s.boxes) == (label, (h, w), tuple(tuple(map(float, b)) for b in boxes))
    assert ds.check(decode=True) == []


def test_size_and_label_problems(tmp_path):
    write_wsoleval(tmp_path / "images", tmp_path / "metadata")
    test_sizes = tmp_path / "metadata" / "CUB" / "test" / "image_sizes.txt"
    test_sizes.write_text(test_sizes.read_text().replace("test/002.Laysan_Albatross/f.jpg,32,32", "test/002.Laysan_Albatross/f.jpg,32"))
    loc = tmp_path / "metadata" / "CUB" / "test" / "localization.txt"
    loc.write_text(loc.read_text().replace(",0,0,59,49", ",0,0,61,49"))
    sizes = tmp_path / "metadata" / "CUB" / "val" / "image_sizes.txt"
    sizes.write_text(sizes.read_text().replace(",44,33", ",33,44"))
    ds = DATASETS.build("wsoleval", root=tmp_path / "images", metadata=tmp_path / "metadata")
    problems = [str(p) for p in ds.check()]
    assert problems == [
        f"{test_sizes}:2: expected 3 comma-separated fields, found 2: 'test/002.Laysan_Albatross/f.jpg,32'",
        f"{tmp_path / 'metadata/CUB/test/image_ids.txt'}:2: image test/002.Laysan_Albatross/f.jpg has no line in image_sizes.txt",
        f"{tmp_path / 'metadata/CUB/val/image_ids.txt'}:1: image {tmp_path / 'images/val/002.Laysan_Albatross/d.jpg'} is 44x33, annotated as 33x44",
        f"{loc}:1: box (0, 0, 61, 49) is outside the 60x50 image",
    ]


def test_check_command_passes_reader_options(tmp_path, run_cli):
    write_wsoleval(tmp_path / "images", tmp_path / "metadata", name="ILSVRC")
    code, out, err = run_cli("data", "check", "--dataset", "wsoleval", "--root", tmp_path / "images",
                             "--metadata", tmp_path / "metadata", "--set", "name=ILSVRC")
    assert code == 0, out + err
    assert "wsoleval-ILSVRC: 2 classes" in out and "no problems found" in out
