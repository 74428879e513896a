"""``wsolbench report``: one self-contained HTML page per leaderboard, checked as written and in a real browser
(headless Chromium driven by playwright): the table's rows, every image loaded, sorting by a clicked header."""
import base64
import json
import re
import shutil
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from wsolbench import pictures as P
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import train_and_evaluate
from wsolbench.leaderboard import collect_leaderboard_runs, leaderboard_table
from wsolbench.report import write_reports

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and Path(p).is_file()), None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """cam (seeds 0 and 1: one averaged row) and acol, scored under cub and, as an extra protocol, wsoleval."""
    from wsolbench.data.synthetic import generate

    root = tmp_path_factory.mktemp("report")
    synth = generate(root / "synth", classes=4, per_class=8, test_per_class=3, size=32)

    def tiny(method, seed=0, **kw):
        cfg = RunConfig(method=method, backbone="test_resnet", output_stride=8, dataset="synthetic",
                        data_root=str(synth), epochs=1, batch_size=8, lr=0.01, input_size=32, seed=seed,
                        out=str(root / "runs"), device="cpu", extra_protocols=["wsoleval"], **kw)
        return train_and_evaluate(cfg, show_progress=False)

    tiny("cam", 0), tiny("cam", 1), tiny("acol", method_settings={"head_width": 16})
    return root / "runs"


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("boards")
    return write_reports(runs, out, pool=8, n_best=2, n_worst=2), out


class _Page(HTMLParser):
    """The leaderboard's rows (cell texts) and every <img> src of a page."""

    def __init__(self):
        super().__init__()
        self.images, self.rows, self.links, self._in_board, self._row, self._cell = [], [], [], False, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs.get("href"))
        elif tag == "table":
            self._in_board = attrs.get("id") == "leaderboard-table"
        elif tag == "tr" and self._in_board and "data-row" in attrs:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._in_board = False


def parse(path):
    page = _Page()
    page.feed(Path(path).read_text())
    return page


def test_one_self_contained_page_per_leaderboard(runs, pages):
    paths, out = pages
    assert sorted(p.name for p in paths) == ["synthetic-cub.html", "synthetic-wsoleval.html"]
    df, problems, run_dirs = collect_leaderboard_runs(runs)
    assert not problems
    for path in paths:
        protocol = path.stem.split("-", 1)[1]
        expected = leaderboard_table(df[df["protocol"] == protocol], run_dirs)[3]  # the markdown's cells
        page = parse(path)
        # the same rows as the markdown leaderboard, in its order, plus the settings cell
        assert [r[:len(expected.columns)] for r in page.rows] == expected.astype(str).values.tolist()
        cam = next(r for r in page.rows if r[0] == "cam")
        assert any(re.fullmatch(r"0!?,1!? \(2(; [12] collapsed)?\)", c) for c in cam) and '"method": "cam"' in cam[-1]  # seeds and the row's settings (config.json)
        assert re.search(r"\[\d+\.\d, \d+\.\d\]", cam[expected.columns.get_loc("GT-known Loc")])  # its 95% interval
        # forest plots (GT-known Loc, Top-1 Cls) + 2 rows x (overlays, threshold curves, loss terms); all inline
        # PNGs, nothing fetched from elsewhere
        assert len(page.images) == 8 and path.read_text().count('alt="forest plot: ') == 2
        for src in page.images:
            assert src.startswith("data:image/png;base64,")
            with Image.open(BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
                assert im.format == "PNG" and min(im.size) > 100
        text = path.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no network at view time
        assert f"under the <code>{protocol}</code> protocol" in text and "(val)" in text


def test_the_overlays_show_the_same_images_for_every_row(runs, pages):
    """Best and worst are picked once over all rows, so the tiles' image ids agree across rows."""
    paths, _ = pages
    for path in paths:
        text = path.read_text()
        assert text.count('alt="overlays: ') == 2
        ids = re.findall(r'<span class="image-ids">(.*?)</span>', text)
        assert len(ids) == 2 and ids[0] == ids[1], ids  # one draw for both rows
        kinds = [item.split(":")[0] for item in ids[0].split("; ")]
        assert kinds == ["best", "best", "worst", "worst"]
        srcs = parse(path).images
        assert len(set(srcs)) == len(srcs)  # but each row's own maps


def test_loss_terms_come_from_the_steps_log(tmp_path):
    records = [{"epoch": e, "step": s, "global_step": 3 * e + s, "lr": 0.01, "images_per_s": 9.0,
                "loss": 2.0 - 0.1 * s, "cls": 1.9 - 0.1 * s, "sc": 0.08, "gc": 0.02} for e in range(2) for s in (1, 2, 3)]
    terms = P.loss_terms(records)
    assert list(terms) == ["loss", "cls", "sc", "gc"]
    assert terms["sc"] == ([1, 2, 3, 4, 5, 6], [0.08] * 6)
    only = P.loss_terms([{"global_step": 1, "loss": 1.5, "cls": 1.5}])
    assert list(only) == ["cls"]  # the total equals the one term: drawn once
    log = tmp_path / "steps.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + '\n{"global_step": 7, "loss"\n')
    with pytest.raises(Exception, match=r"steps.jsonl:7: not valid JSON"):
        P.read_steps(log)


def test_show_writes_the_loss_picture(runs, run_cli):
    (cam,) = [p.parent for p in runs.rglob("config.json") if p.parent.name.startswith("cam__") and "seed0" in p.parent.name]
    code, out, err = run_cli("show", cam, "--n", 2, "--device", "cpu")
    assert code == 0, err
    assert f"wrote {cam / 'losses.png'}" in out
    with Image.open(cam / "losses.png") as im:
        assert im.size == (round(P.CURVES_INCHES[0] * P.DPI), round(P.CURVES_INCHES[1] * P.DPI))


def test_report_cli_and_its_errors(runs, run_cli, tmp_path):
    code, out, err = run_cli("report", "--runs", runs, "--out", tmp_path, "--images", 0)
    assert code == 0, err
    assert (tmp_path / "synthetic-cub.html").is_file() and "alt=\"overlays" not in (tmp_path / "synthetic-cub.html").read_text()
    code, out, err = run_cli("report", "--runs", tmp_path / "nowhere", "--out", tmp_path)
    assert code == 2 and "nowhere: no such folder of runs" in err and "Traceback" not in err
    code, out, err = run_cli("report", "--runs", runs, "--out", tmp_path, "--pool", 0)
    assert code == 2 and "--pool 0" in err


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium); "
                                             "the browser test needs a real browser")
def test_the_page_in_a_real_browser(pages, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra: pip install -e '.[test]'")
    paths, _ = pages
    path = next(p for p in paths if p.name == "synthetic-wsoleval.html")
    expected_rows = len(parse(path).rows)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            rows = page.locator("#leaderboard-table tbody tr")
            assert rows.count() == expected_rows == 2
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert len(widths) == 8 and all(w > 0 for w in widths), widths

            headers = page.locator("#leaderboard-table thead th").all_inner_texts()
            column = headers.index("GT-known Loc")

            def values():
                cells = page.eval_on_selector_all("#leaderboard-table tbody tr",
                                                  f"rs => rs.map(r => r.cells[{column}].textContent)")
                return [float(c.split()[0]) for c in cells]

            def methods():
                return page.eval_on_selector_all("#leaderboard-table tbody tr", "rs => rs.map(r => r.cells[0].textContent)")

            page.locator("#leaderboard-table thead th", has_text=re.compile(r"^\s*GT-known Loc\s*$")).click()
            first = values()
            assert first == sorted(first, reverse=True)  # numbers: best first
            assert page.get_attribute(f"#leaderboard-table thead th >> nth={column}", "aria-sort") == "descending"
            page.locator("#leaderboard-table thead th", has_text=re.compile(r"^\s*GT-known Loc\s*$")).click()
            assert values() == sorted(first)
            page.locator("#leaderboard-table thead th", has_text="method").first.click()
            assert methods() == sorted(methods())  # text: A to Z
            page.locator("#leaderboard-table thead th", has_text="method").first.click()
            assert methods() == sorted(methods(), reverse=True)
            assert np.isfinite(first).all() and len(set(methods())) == 2  # two different rows really moved
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    with Image.open(tmp_path / "report.png") as im:
        assert im.size[0] == 1400 and im.size[1] > 900  # the whole page, taller than the window


def test_the_main_job_writes_the_pages_beside_the_markdown(tmp_path, run_cli):
    """`wsolbench run` with no method, backbone or dataset (the main job; here on a tiny set, one epoch) writes
    the HTML pages next to the markdown; the baselines, which do not train, get overlays but no loss curves."""
    from wsolbench.data.synthetic import generate

    data = generate(tmp_path / "synth", classes=4, per_class=4, test_per_class=2, size=32)
    code, out, err = run_cli("run", "--data-root", data, "--epochs", 1, "--batch-size", 8, "--input-size", 32,
                             "--set", "head_width=16", "--out", tmp_path / "runs", "--leaderboard-out", tmp_path / "boards",
                             "--no-progress")
    assert code == 0, out + err
    boards = tmp_path / "boards"
    assert sorted(p.name for p in boards.glob("*.html")) == ["synthetic-cub.html", "synthetic-wsoleval.html"]
    assert {p.stem for p in boards.glob("*.html")} == {p.stem for p in boards.glob("*.md")}
    page = parse(boards / "synthetic-cub.html")
    methods = [r[0] for r in page.rows]
    assert {"center-box", "full-image", "cam", "i2c"} <= set(methods)
    text = (boards / "synthetic-cub.html").read_text()
    assert text.count('alt="overlays: ') == len(methods)  # every row, baselines included
    assert text.count('alt="loss terms: ') == len(methods) - 2  # the two baselines did not train
    assert "no loss curves: not trained" in text


def test_the_forest_plot_draws_every_row_and_marks_collapsed_seeds(tmp_path):
    """One line per row: the interval as a bar, the mean, a dot per seed, a collapsed seed as a red x."""
    rows = [P.ForestRow("cam/resnet50", 52.0, (45.0, 59.0), [(0, 50.0, False), (1, 54.0, False)]),
            P.ForestRow("i2c/resnet50", 40.0, (20.0, 61.0), [(0, 55.0, False), (1, 25.0, True)]),
            P.ForestRow("center-box/resnet50", 30.0, None, [(0, 30.0, False)])]
    fig = P.forest_figure(rows, "GT-known Loc", "synthetic / cub")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [r.label for r in rows]
    bars = [p for p in ax.patches]
    assert [(b.get_x(), b.get_x() + b.get_width()) for b in bars] == [(45.0, 59.0), (20.0, 61.0)]  # no records: no bar
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x" and len(line.get_xdata())]
    assert [(line.get_xdata()[0], line.get_color()) for line in crosses] == [(25.0, "red")]
    dots = [line.get_xdata()[0] for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata())]
    assert sorted(dots) == [30.0, 50.0, 54.0, 55.0]
    with Image.open(BytesIO(P.png_bytes(fig))) as im:
        assert im.format == "PNG" and im.size[1] > 100
    with pytest.raises(Exception, match="no row to draw"):
        P.forest_figure([], "GT-known Loc", "empty")


def test_the_page_lists_collapsed_runs(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy)
    (acol,) = [p.parent for p in copy.rglob("metrics.json") if p.parent.name.startswith("acol")]
    data = json.loads((acol / "metrics.json").read_text())
    data["collapse"] = "val Top-1 Cls 14.1% ends near chance (25.0%)"
    (acol / "metrics.json").write_text(json.dumps(data))
    (path,) = [p for p in write_reports(copy, tmp_path / "boards", pictures=False) if p.name == "synthetic-cub.html"]
    text = path.read_text()
    assert f"seed 0, run {data['run_id']}: val Top-1 Cls 14.1% ends near chance (25.0%)</li>" in text
    row = next(r for r in parse(path).rows if r[0] == "acol-simplified")
    assert any(re.fullmatch(r"0! \(1; 1 collapsed\)", c) for c in row)
