"""Time and memory of building the dataset index (training/data/catalog.py build_records).

    python scripts/bench_index.py [--sizes ffpp dfdc] [--repeats 3] [--keep DIR]

Writes DeepfakeBench-schema JSON files of real-dataset size into a temporary folder
(no image files: building records never opens them):

* ``ffpp`` — FF++-sized: 5 label groups (FF-real, FF-DF, FF-F2F, FF-FS, FF-NT) x 1,000
  videos x 32 frames, split 720/140/140, compression nesting (c23), masks for fakes,
  landmarks for all: 5,000 videos, 160,000 frames;
* ``dfdc`` — DFDC-sized: 128,000 videos x 32 frames (DFDC_Real/DFDC_Fake, 1:4), flat
  nesting, landmarks: 4,096,000 frames.

Each measurement runs in a fresh subprocess: wall time of ``build_records`` for the
train split (JSON read + parse + records), and peak memory as (a) the growth of the
process's peak resident set (``VmHWM`` in /proc, Linux) over its size after imports and
(b) tracemalloc's peak of Python allocations, and what the returned records keep
allocated (in a separate run: tracing slows Python down).
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository root, not scripts/

from training.cli import cli_parser, run_cli  # noqa: E402

FRAMES = 32
SIZES = {
    "ffpp": {"name": "FFppBench", "videos": 5000},
    "dfdc": {"name": "DFDCBench", "videos": 128_000},
}
FF_LABELS = ("FF-real", "FF-DF", "FF-F2F", "FF-FS", "FF-NT")


def _record(folder: str, video: str, label: str, masks: bool) -> Dict:
    frames = [f"{folder}/frames/{video}/{i * 10:03d}.png" for i in range(FRAMES)]
    record = {"label": label, "frames": frames,
              "landmarks": [p.replace("/frames/", "/landmarks/").replace(".png", ".npy") for p in frames]}
    if masks:
        record["masks"] = [p.replace("/frames/", "/masks/") for p in frames]
    return record


def write_ffpp(root: Path, name: str, videos: int) -> None:
    per_label = videos // len(FF_LABELS)
    tree: Dict = {}
    for label in FF_LABELS:
        method = "original_sequences/youtube" if label == "FF-real" else f"manipulated_sequences/{label}"
        splits: Dict = {"train": {}, "val": {}, "test": {}}
        for index in range(per_label):
            split = "train" if index < per_label * 0.72 else ("val" if index < per_label * 0.86 else "test")
            video = f"{index:03d}" if label == "FF-real" else f"{index:03d}_{(index + 1) % per_label:03d}"
            splits[split][video] = _record(f"{name}/{method}/c23", video, label, masks=label != "FF-real")
        tree[label] = {split: {"c23": entries} for split, entries in splits.items()}
    _dump(root, name, tree)


def write_dfdc(root: Path, name: str, videos: int) -> None:
    tree: Dict = {"DFDC_Real": {"train": {}, "val": {}, "test": {}},
                  "DFDC_Fake": {"train": {}, "val": {}, "test": {}}}
    for index in range(videos):
        label = "DFDC_Real" if index % 5 == 0 else "DFDC_Fake"
        split = "test" if index % 25 == 1 else ("val" if index % 25 == 2 else "train")
        video = f"{index:08x}"
        part = f"dfdc_train_part_{index % 50}"
        tree[label][split][video] = _record(f"{name}/train/{part}", video, label, masks=False)
    _dump(root, name, tree)


def _dump(root: Path, name: str, tree: Dict) -> None:
    path = root / "json" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({name: tree}, handle)


# VmHWM, not ru_maxrss: across fork+exec ru_maxrss keeps the parent's peak (this script's,
# after writing the JSON), which would hide the child's own growth.
CHILD = r"""
import json, sys, time, tracemalloc
from training.data.catalog import build_records

def status_kib(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))

root, name, labels, trace = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4] == "1"
label_dict = {label: int(not label.endswith(("real", "Real"))) for label in labels}
before = status_kib("VmRSS")
if trace:
    tracemalloc.start()
start = time.perf_counter()
records = build_records(name, "train", data_root=root, label_dict=label_dict)
elapsed = time.perf_counter() - start
retained, peak = tracemalloc.get_traced_memory() if trace else (None, None)
after = status_kib("VmHWM")
print(json.dumps({"seconds": elapsed, "videos": len(records), "frames": sum(len(r.frames) for r in records),
                  "rss_growth_mib": (after - before) / 1024, "tracemalloc_peak_mib": peak and peak / 2**20,
                  "tracemalloc_retained_mib": retained and retained / 2**20}))
"""


def measure(root: Path, name: str, labels: List[str], trace: bool) -> Dict:
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    result = subprocess.run([sys.executable, "-c", CHILD, str(root), name, json.dumps(labels), "1" if trace else "0"],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"measurement of {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Optional[List[str]] = None) -> int:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=["ffpp", "dfdc"],
                        help="dataset sizes to index (see above)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per size (the median is reported)")
    parser.add_argument("--keep", help="write the JSON files here (kept) instead of a temporary folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_index_") as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        rows = []
        for size in args.sizes:
            spec = SIZES[size]
            writer, labels = ((write_ffpp, list(FF_LABELS)) if size == "ffpp"
                              else (write_dfdc, ["DFDC_Real", "DFDC_Fake"]))
            writer(root, spec["name"], spec["videos"])
            json_mib = (root / "json" / f"{spec['name']}.json").stat().st_size / 2**20
            timed = [measure(root, spec["name"], labels, trace=False) for _ in range(args.repeats)]
            traced = measure(root, spec["name"], labels, trace=True)
            seconds = [t["seconds"] for t in timed]
            rows.append(f"| {size} | {spec['videos']:,} x {FRAMES} | {json_mib:.0f} MiB | {timed[0]['videos']:,} / "
                        f"{timed[0]['frames']:,} | {statistics.median(seconds):.2f} s ({min(seconds):.2f}-"
                        f"{max(seconds):.2f}) | {statistics.median(t['rss_growth_mib'] for t in timed):.0f} MiB | "
                        f"{traced['tracemalloc_peak_mib']:.0f} MiB | {traced['tracemalloc_retained_mib']:.0f} MiB |")
            print(f"{size}: {rows[-1]}", flush=True)
    print("| JSON | videos x frames | file | train split (videos / frames) | build_records "
          "(median, min-max) | peak RSS growth | tracemalloc peak | records kept |")
    print("|:---|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
