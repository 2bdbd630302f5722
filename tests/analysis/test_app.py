"""analysis.app in a real browser: headless Chromium (Debian's package) driven by Playwright uploads the
astronaut photo and a short video of it, and the page shows the boxes, scores and CSVs of training/infer.py's
library for the same files.

Set CLIPFORENSICS_APP_SCREENSHOT=docs/app_screenshot.png to refresh the README's screenshot from this test.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.analysis.test_plots import build_tiny_runs


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no Chromium on PATH (apt-get install -y chromium; .ci/run installs it): the browser test "
                "of analysis.app cannot run")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    """The astronaut as a JPEG and as an 8-frame MP4 (the photo sliding sideways)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("app_media")
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "astronaut.jpg"), photo)
    writer = cv2.VideoWriter(str(folder / "astronaut.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (512, 512))
    for i in range(8):
        writer.write(np.roll(photo, 4 * i, axis=1))
    writer.release()
    return folder / "astronaut.jpg", folder / "astronaut.mp4"


def read_csv_text(text: str):
    return list(csv.DictReader(io.StringIO(text)))


def test_app_in_a_browser_shows_the_boxes_scores_and_csv_of_infer(tmp_path_factory, media):
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    from analysis.app import MediaAnalyser, build_ui, launch
    from training.inference import load_inferencer, write_results

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    run = build_tiny_runs(tmp_path_factory.getbasetemp() / "analysis_tiny_runs")["a"]
    inferencer = load_inferencer(str(run), device="cpu", num_frames=8)
    # What infer.py's library says about the same files: the page must show exactly this.
    expected = {}
    for path in media:
        result = inferencer.score_path(path)
        result.path = path.name
        for row in result.frame_rows:
            row["input"] = path.name
        expected[path.name] = result
    write_results(tmp_path_factory.mktemp("app_expected"), list(expected.values()))
    assert all(r.status == "done" for r in expected.values())

    page_app = build_ui(MediaAnalyser(inferencer), run.name)
    url = launch(page_app, "127.0.0.1", free_port(), block=False)
    started = time.monotonic()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.locator("#uploads input[type=file]").set_input_files([str(p) for p in media])
            # Both uploads listed (Gradio may render a name's stem and extension in separate elements).
            page.wait_for_function("() => { const text = document.querySelector('#uploads').innerText;"
                                   " return text.includes('.jpg') && text.includes('.mp4'); }", timeout=30_000)
            page.locator("#analyse").click()
            page.locator("#faces-table tbody tr").first.wait_for(timeout=40_000)

            # Every sampled frame has a row with the subject's box and, where scored, its P(fake).
            rows = page.locator("#faces-table tbody tr")
            shown = [{key: rows.nth(i).get_attribute(f"data-{key}") for key in ("input", "frame", "box", "prob")}
                     for i in range(rows.count())]
            want = [{"input": name, "frame": str(face.index), "box": ", ".join(map(str, face.box)),
                     "prob": "" if face.prob is None else f"{face.prob:.4f}"}
                    for name, result in expected.items() for face in result.faces]
            assert shown == want
            assert sum(1 for row in shown if row["prob"]) == sum(len(r.frame_rows) for r in expected.values())
            for name, result in expected.items():
                summary = page.locator(f"#faces .summary p[data-input='{name}']")
                assert float(summary.get_attribute("data-prob")) == pytest.approx(result.prob, abs=1e-6)
                assert f"P(fake) = {result.prob:.4f}" in summary.inner_text()

            # One annotated picture per sampled frame (1 for the photo, 8 for the video), the curve, the CAMs.
            assert page.locator("#frames img").count() == 1 + 8
            assert page.locator("#curve img").count() == 1
            assert page.locator("#cams img").count() >= sum(len(r.frame_rows) for r in expected.values())

            # The CSVs offered for download are infer.py's, byte for byte.
            links = {Path(a.get_attribute("href").split("?")[0]).name: a.get_attribute("href")
                     for a in page.locator("#csv a").all() if a.get_attribute("href")}
            assert set(links) >= {"inputs.csv", "frames.csv"}, links
            expected_dir = next(tmp_path_factory.getbasetemp().glob("app_expected*"))
            for name in ("inputs.csv", "frames.csv"):
                served = page.request.get(links[name] if links[name].startswith("http")
                                          else url.rstrip("/") + "/" + links[name].lstrip("/"))
                assert served.ok, links[name]
                assert read_csv_text(served.text()) == read_csv_text((expected_dir / name).read_text())

            screenshot = os.environ.get("CLIPFORENSICS_APP_SCREENSHOT")
            page.screenshot(path=screenshot or str(tmp_path_factory.mktemp("app_shot") / "app.png"),
                            full_page=True)
            browser.close()
    finally:
        page_app.close()
    assert time.monotonic() - started < 60
