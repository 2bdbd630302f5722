r"""Frames per second of the training data loader (read + decode + augment + collate).

    python scripts/bench_loader.py --data_root /path/to/demo_root [--dataset DemoFF] \
        [--config configs/detector/xception.yaml] [--workers 0 2 4] [--repeats 3]

Pipelines, each with the config's training augmentations at the detector's resolution:

* ``baseline``   — DeepfakeBench-style: per sample ``cv2.imread`` + ``cv2.resize`` (bicubic)
  + the same albumentations ops in their stock versions + torchvision ``ToTensor`` and
  ``Normalize`` + torch's default collate;
* ``rgb``        — this framework's loader (training/data/loaders.py) on the PNG files;
* ``lmdb``       — the same on an LMDB of the PNG bytes (preprocessing/to_lmdb.py);
* ``lmdb_cache`` — the same on a decoded cache pre-resized through the detector's geometry
  (preprocessing/resize_cache.py): no PNG decoding at all.

* ``deepfakebench`` — DeepfakeBench's own ``DeepfakeAbstractBaseDataset``
  (training/dataset/abstract_dataset.py of a DeepfakeBench checkout given with
  ``--deepfakebench``), configured as its ``train.py`` does (its xception.yaml updated by its
  train_config.yaml; ``lmdb: false``, the same frames through a JSON in its own layout), its
  ``collate_fn`` and DataLoader arguments. It runs in a subprocess whose ``sys.path`` starts with
  ``--deepfakebench_site``, so it gets the albumentations DeepfakeBench pins (1.1.0):
  ``pip install --no-deps --target SITE albumentations==1.1.0 qudida``. Nothing of DeepfakeBench
  is part of this project; the pipeline is skipped (with a message) without a checkout.

Every pipeline runs over the same training frames, with the same DataLoader settings
(batch size, workers, prefetch), after warm-up batches that absorb worker start-up.
Prints two tables (median of ``--repeats`` runs, min-max in brackets), each with the speed-up
of each pipeline over DeepfakeBench and over the baseline at the same worker count, measured
in the same run: frames per wall-clock second over ``--batches`` batches after warm-up, and
frames per CPU-second (CPU time of the main process and its workers over the whole epoch,
from /proc), which load from other processes on a shared machine hardly moves.
Without ``--data_root`` a small demo dataset is generated in a temporary folder.
The LMDB and the cache are written to a temporary folder (the data root is only read).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

if __package__ in (None, ""):
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
from training.cli import cli_parser, run_cli  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

PIPELINES = ("baseline", "rgb", "lmdb", "lmdb_cache", "deepfakebench")


# --------------------------------------------------------------------------- baseline


def fancy_pca_of_albumentations_1_1(alpha: float, p: float):
    """FancyPCA as albumentations 1.1.0 (DeepfakeBench's pin) does it, at its cost: one Gaussian
    alpha per image, float64 covariance of all pixels, a constant RGB shift (its
    ``np.column_stack`` of the 3x3 eigenvector matrix transposes it), truncated to uint8.
    albumentations 2.x's FancyPCA shifts each pixel in proportion to its deviation and costs
    ~3x more per call (39 vs 14 ms per 256 px frame under cProfile), which made this baseline
    1.8x slower than DeepfakeBench's own class."""
    import albumentations as A

    class FancyPCA11(A.ImageOnlyTransform):
        def get_params(self):
            return {"alpha": self.py_random.gauss(0, alpha)}

        def apply(self, img, alpha, **params):
            pixels = (img / 255.0).reshape(-1, 3)
            values, vectors = np.linalg.eigh(np.cov(pixels - pixels.mean(axis=0), rowvar=False))
            vectors = vectors[:, values[::-1].argsort()]
            shift = vectors.T @ (alpha * np.sort(values)[::-1]) * 255
            return np.clip(img.astype(np.float64) + shift, 0.0, 255.0).astype(np.uint8)

    return FancyPCA11(p=p)


def stock_augmentations(aug_cfg) -> List:
    """The config's augmentations as stock albumentations ops (no framework speed-ups), FancyPCA
    as DeepfakeBench's albumentations 1.1.0 computes it."""
    import albumentations as A

    from training.data.transforms import FastFancyPCA, MirrorFlip, build_augmentations

    def stock(op):
        if isinstance(op, FastFancyPCA):
            return fancy_pca_of_albumentations_1_1(op.alpha, op.p)
        if isinstance(op, MirrorFlip):
            return A.HorizontalFlip(p=op.p)
        if isinstance(op, A.OneOf):
            return A.OneOf([stock(child) for child in op.transforms], p=op.p)
        return op

    return [stock(op) for op in build_augmentations(aug_cfg)]


class BaselineDataset(Dataset):
    """DeepfakeBench's per-sample path: imread → RGB → resize → albumentations → ToTensor → Normalize."""

    def __init__(self, paths: Sequence[Path], labels: Sequence[int], resolution: int, aug_cfg, mean, std):
        import albumentations as A

        self.paths, self.labels, self.resolution = list(paths), list(labels), resolution
        self.augment = A.Compose(stock_augmentations(aug_cfg))
        self.mean, self.std = list(mean), list(std)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        from torchvision.transforms import functional as F

        image = cv2.cvtColor(cv2.imread(str(self.paths[index])), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (self.resolution, self.resolution), interpolation=cv2.INTER_CUBIC)
        image = self.augment(image=image)["image"]
        tensor = F.normalize(F.to_tensor(image), self.mean, self.std)
        return {"image": tensor, "label": self.labels[index]}


# --------------------------------------------------------------------------- DeepfakeBench itself


def deepfakebench_config(checkout: Path, dataset: str, json_dir: Path, labels: Dict[str, int], workers: int,
                         batch_size: int) -> dict:
    """DeepfakeBench's training config as its train.py builds it: the detector YAML updated by
    train_config.yaml (which wins), then the data paths of this benchmark."""
    import yaml

    config = yaml.safe_load((checkout / "training/config/detector/xception.yaml").read_text())
    config.update(yaml.safe_load((checkout / "training/config/train_config.yaml").read_text()))
    config.update(train_dataset=[dataset], dataset_json_folder=str(json_dir), lmdb=False, workers=workers,
                  train_batchSize=batch_size)
    config["label_dict"] = {**config.get("label_dict", {}), **labels}
    return config


def write_deepfakebench_json(records, samples, dataset: str, json_dir: Path) -> Dict[str, int]:
    """The training frames our loader samples, as DeepfakeBench's rearranged JSON lists them
    (dataset → label → split → video → {label, frames}); paths start with ``./`` because its
    load_rgb prefixes any other path with ``rgb_dir`` and a backslash."""
    import json

    used: Dict[int, List[str]] = {}
    for record_index, frame_index in samples:
        used.setdefault(record_index, []).append(records[record_index].frames[frame_index])
    tree: Dict[str, Dict] = {}
    labels: Dict[str, int] = {}
    for record_index, frames in used.items():
        record = records[record_index]
        labels[record.label_name] = record.label
        videos = tree.setdefault(record.label_name, {"train": {}})["train"]
        videos[record.key.replace("/", "_")] = {"label": record.label_name,
                                                "frames": [f"./{frame}" for frame in sorted(set(frames))]}
    json_dir.mkdir(parents=True, exist_ok=True)
    (json_dir / f"{dataset}.json").write_text(json.dumps({dataset: tree}))
    return labels


def run_deepfakebench(spec_path: Path) -> None:
    """Subprocess entry: import DeepfakeBench's dataset module from the checkout (as a package of
    its own, without its __init__, which imports every dataset class and their dependencies),
    build its loader and time it."""
    import importlib
    import json
    import types

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    package = types.ModuleType("deepfakebench_dataset")
    package.__path__ = [str(Path(spec["checkout"]) / "training" / "dataset")]
    sys.modules["deepfakebench_dataset"] = package
    module = importlib.import_module("deepfakebench_dataset.abstract_dataset")
    import albumentations

    os.chdir(spec["data_root"])  # its frame paths are relative to the working directory
    dataset = module.DeepfakeAbstractBaseDataset(config=spec["config"], mode="train")
    loader = DataLoader(dataset=dataset, batch_size=spec["config"]["train_batchSize"], shuffle=True,
                        num_workers=int(spec["config"]["workers"]), collate_fn=dataset.collate_fn,
                        persistent_workers=spec["config"]["workers"] > 0)
    measured = frames_per_second(loader, spec["warmup"], spec["batches"])
    print(json.dumps({**measured._asdict(), "albumentations": albumentations.__version__,
                      "n_frames": len(dataset)}))


def deepfakebench_fps(roots: Dict[str, Path], args, workers: int, work: Path) -> Measurement:
    import json
    import subprocess

    from training.data.loaders import build_dataset, load_records
    from training.models import build_detector

    config = build_config(args.config, roots["rgb"], args.dataset, "rgb", workers, args.batch_size, args.opts)
    with torch.device("meta"):
        spec = build_detector(config).input_spec
    records = load_records(config, [args.dataset], "train")
    ours = build_dataset(config, [args.dataset], "train", spec, train=True, records=records)
    json_dir = work / "deepfakebench_json"
    labels = write_deepfakebench_json(ours.records, ours.samples, args.dataset, json_dir)
    checkout = Path(args.deepfakebench).resolve()
    spec_path = work / "deepfakebench_spec.json"
    spec_path.write_text(json.dumps({
        "checkout": str(checkout), "data_root": str(roots["rgb"].resolve()), "warmup": args.warmup,
        "batches": args.batches,
        "config": deepfakebench_config(checkout, args.dataset, json_dir.resolve(), labels, workers, args.batch_size)}))
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (args.deepfakebench_site, repo) if p)
    output = subprocess.run([sys.executable, __file__, "--deepfakebench_worker", str(spec_path)], env=env,
                            check=True, capture_output=True, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    if not getattr(deepfakebench_fps, "announced", False):
        print(f"  deepfakebench: {checkout}, albumentations {result['albumentations']}, "
              f"{result['n_frames']} training frames (ours: {len(ours)})", flush=True)
        deepfakebench_fps.announced = True
    return Measurement(result["fps"], result["cpu_ms"])


# --------------------------------------------------------------------------- data set-up


def prepare_roots(data_root: Path, dataset: str, spec, order: str, work: Path) -> Dict[str, Path]:
    """A writable root that links to the data (for the LMDB) and a decoded cache root."""
    from preprocessing.resize_cache import build_cache
    from preprocessing.to_lmdb import convert

    linked = work / "linked"
    (linked / "json").mkdir(parents=True)
    for entry in data_root.iterdir():
        if entry.name not in ("json", "lmdb"):
            (linked / entry.name).symlink_to(entry.resolve())
    (linked / "json" / f"{dataset}.json").symlink_to((data_root / "json" / f"{dataset}.json").resolve())
    convert(linked, dataset)
    cache = work / "cache"
    build_cache(linked, dataset, cache, spec, order)  # pre-resized through the detector's geometry
    return {"rgb": linked, "lmdb": linked, "lmdb_cache": cache}


def build_config(config_path: str, data_root: Path, dataset: str, storage: str, workers: int, batch_size: int,
                 overrides: Sequence[str]):
    from training.config import load_config

    return load_config(config_path, [f"data.root={data_root}", f"data.train_dataset=[{dataset}]",
                                     f"data.storage={storage}", f"data.num_workers={workers}",
                                     f"train.batch_size={batch_size}", "model.backbone.pretrained=null",
                                     *overrides])


def make_loader(pipeline: str, roots: Dict[str, Path], args, workers: int) -> DataLoader:
    from training.data.loaders import build_dataset, build_loader, load_records
    from training.models import build_detector

    storage = "rgb" if pipeline in ("rgb", "baseline") else "lmdb"
    root = roots.get(pipeline, roots["rgb"])
    config = build_config(args.config, root, args.dataset, storage, workers, args.batch_size, args.opts)
    with torch.device("meta"):  # only the input spec is needed
        spec = build_detector(config).input_spec
    if pipeline == "baseline":
        records = load_records(config, [args.dataset], "train")
        reference = build_dataset(config, [args.dataset], "train", spec, train=True, records=records)
        paths = [root / reference.records[r].frames[p] for r, p in reference.samples]
        labels = [reference.records[r].label for r, _ in reference.samples]
        dataset = BaselineDataset(paths, labels, spec.resolution, config["augment"], spec.mean, spec.std)
        generator = torch.Generator().manual_seed(0)
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=True, generator=generator,
                          num_workers=workers, persistent_workers=workers > 0,
                          prefetch_factor=4 if workers > 0 else None, drop_last=False)
    dataset = build_dataset(config, [args.dataset], "train", spec, train=True)
    return build_loader(config, dataset, args.batch_size, train=True)


class Measurement(NamedTuple):
    fps: float  # frames per wall-clock second after warm-up
    cpu_ms: Optional[float]  # CPU milliseconds per frame, main process + workers, whole epoch


def cpu_seconds(pid: Optional[int] = None) -> Optional[float]:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def frames_per_second(loader: DataLoader, warmup: int, batches: int) -> Measurement:
    """Wall-clock frames/s of ``batches`` batches after ``warmup``; then the rest of the epoch is
    read, and the CPU time of the main process and its workers over the whole epoch is divided
    by its frames. That second figure hardly moves with load from other processes on a shared
    machine (wall-clock rates there swing several-fold within a minute)."""
    cpu_start = cpu_seconds()
    iterator = iter(loader)
    total = 0
    for _ in range(warmup):
        total += len(next(iterator)["label"])
    start, frames = time.perf_counter(), 0
    for _ in range(batches):
        frames += len(next(iterator)["label"])
    elapsed = time.perf_counter() - start
    for batch in iterator:
        total += len(batch["label"])
    total += frames
    cpu = cpu_seconds() - cpu_start
    for worker in getattr(iterator, "_workers", []):  # persistent: still alive, their counters intact
        worker_cpu = cpu_seconds(worker.pid)
        cpu = None if worker_cpu is None or cpu is None else cpu + worker_cpu
    del iterator
    return Measurement(frames / elapsed, None if cpu is None else cpu / total * 1000)


Results = Dict[str, Dict[int, List[Measurement]]]  # pipeline -> workers -> one per repeat


def run(args) -> Results:
    pipelines = list(args.pipelines)
    if "deepfakebench" in pipelines and not args.deepfakebench:
        print("  deepfakebench: skipped (no --deepfakebench checkout given)", flush=True)
        pipelines.remove("deepfakebench")
    results: Results = {p: {w: [] for w in args.workers} for p in pipelines}
    with tempfile.TemporaryDirectory(prefix="bench_loader_") as tmp:
        data_root = Path(args.data_root) if args.data_root else generate_demo_root(Path(tmp) / "demo")
        from training.models import build_detector

        config = build_config(args.config, data_root, args.dataset, "rgb", 0, args.batch_size, args.opts)
        with torch.device("meta"):
            spec = build_detector(config).input_spec
        order = (config["augment"] or {}).get("order", "reference")
        roots = prepare_roots(data_root, args.dataset, spec, order, Path(tmp))
        if args.stages:
            print(stage_costs(roots, args), flush=True)
        for repeat in range(args.repeats):
            for workers in args.workers:
                for pipeline in pipelines:  # interleaved, so load changes hit every pipeline alike
                    if pipeline == "deepfakebench":
                        measured = deepfakebench_fps(roots, args, workers, Path(tmp))
                    else:
                        loader = make_loader(pipeline, roots, args, workers)
                        measured = frames_per_second(loader, args.warmup, args.batches)
                        del loader
                    results[pipeline][workers].append(measured)
                    cpu = "" if measured.cpu_ms is None else f", {measured.cpu_ms:6.2f} CPU ms/frame"
                    print(f"  run {repeat + 1}/{args.repeats} workers={workers} {pipeline:13s} "
                          f"{measured.fps:8.1f} frames/s{cpu}", flush=True)
    return results


def generate_demo_root(root: Path) -> Path:
    from preprocessing.demo.generate import generate_demo

    generate_demo(root, seed=0, scale=0.3, datasets=["DemoFF"])
    return root


def report(results: Results, workers: Sequence[int]) -> str:
    """Two tables, each with the ratios of medians: frames per wall-clock second after warm-up,
    and frames per CPU-second (main process + workers, whole epoch; absent without /proc)."""
    metrics = {"frames/s (wall clock)": lambda m: m.fps,
               "frames per CPU-second": lambda m: None if m.cpu_ms is None else 1000 / m.cpu_ms}
    tables = []
    for title, metric in metrics.items():
        values = {p: {w: [metric(m) for m in per_worker[w]] for w in workers} for p, per_worker in results.items()}
        if any(v is None for per_worker in values.values() for w in workers for v in per_worker[w]):
            continue
        median = {p: {w: statistics.median(values[p][w]) for w in workers} for p in values}

        def cell(series: List[float], middle: float) -> str:
            return f"{middle:.0f} ({min(series):.0f}-{max(series):.0f})"

        lines = [f"| {title} | " + " | ".join(f"{w} workers" for w in workers) + " |",
                 "|:---|" + "---:|" * len(workers)]
        for pipeline in values:
            lines.append(f"| {pipeline} | " + " | ".join(cell(values[pipeline][w], median[pipeline][w])
                                                        for w in workers) + " |")
        pairs = [(p, r) for r in ("deepfakebench", "baseline") if r in values
                 for p in values if p not in ("deepfakebench", "baseline")]
        if "deepfakebench" in values and "baseline" in values:
            pairs.append(("baseline", "deepfakebench"))  # how faithful the re-implementation is
        for pipeline, reference in pairs:
            lines.append(f"| {pipeline} / {reference} | " + " | ".join(
                f"{median[pipeline][w] / median[reference][w]:.2f}x" for w in workers) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def stage_costs(roots: Dict[str, Path], args, repeats: int = 200) -> str:
    """Milliseconds per frame of each step, old way vs new way, on one training frame."""
    import albumentations as A
    from torchvision.transforms import functional as F

    from training.data.loaders import load_records
    from training.data.storage import LmdbStorage, decode_image
    from training.data.transforms import FastFancyPCA, build_transform, seed_independently
    from training.models import build_detector

    config = build_config(args.config, roots["rgb"], args.dataset, "rgb", 0, args.batch_size, args.opts)
    with torch.device("meta"):
        spec = build_detector(config).input_spec
    records = load_records(config, [args.dataset], "train")
    path = records[0].frames[0]
    png = (roots["rgb"] / path).read_bytes()
    cached = LmdbStorage(roots["lmdb_cache"]).read_bytes(path, args.dataset)[0]
    image = decode_image(png, path)
    transform = build_transform(config["augment"], spec, train=True)
    frames = cv2.resize(image, (spec.resolution, spec.resolution), interpolation=cv2.INTER_CUBIC)[None]
    stock_pca, fast_pca = A.FancyPCA(alpha=0.1, p=1.0), FastFancyPCA(alpha=0.1, p=1.0)
    levels = transform._lut

    def lut_by_indexing():
        channels = np.ascontiguousarray(frames.transpose(0, 3, 1, 2))
        out = np.empty(channels.shape, np.float32)
        for c in range(3):
            out[:, c] = levels[c][channels[:, c]]
        return out

    steps = [
        ("PNG decode: cv2.imdecode + BGR->RGB (before)",
         lambda: cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)),
        ("PNG decode: decode_image, libspng + CRC check (now)", lambda: decode_image(png, path)),
        ("decoded-cache read (np.load of raw pixels)", lambda: decode_image(cached, path)),
        ("FancyPCA, albumentations (when drawn)", lambda: stock_pca(image=frames[0])),
        ("FancyPCA, FastFancyPCA (when drawn)", lambda: fast_pca(image=frames[0])),
        ("normalise: ToTensor + Normalize (torch)", lambda: F.normalize(F.to_tensor(frames[0]), spec.mean, spec.std)),
        ("normalise: LUT by numpy indexing (before)", lut_by_indexing),
        ("normalise: cv2.LUT per plane (now)", lambda: transform._normalise(frames)),
        ("per-sample seed: torch.manual_seed (before)", lambda: torch.manual_seed(1)),
        ("per-sample seed: CPU generator only (now)", lambda: torch.random.default_generator.manual_seed(1)),
        ("albumentations Compose.set_random_seed (before)", lambda: transform.pipeline.set_random_seed(1)),
        ("seed_independently: one shared stream (now)", lambda: seed_independently(transform.pipeline, 1)),
    ]
    lines = ["| step (one frame) | ms |", "|:---|---:|"]
    for name, step in steps:
        step()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(max(repeats // 5, 1)):
                step()
            times.append((time.perf_counter() - start) / max(repeats // 5, 1) * 1000)
        lines.append(f"| {name} | {min(times):.3f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--data_root", help="data root with json/<dataset>.json (default: generate a demo)")
    parser.add_argument("--dataset", default="DemoFF", help="dataset whose training frames are read")
    parser.add_argument("--config", default="configs/detector/xception.yaml",
                        help="detector config: resolution, normalisation and augmentations")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4],
                        help="DataLoader worker counts to measure")
    parser.add_argument("--pipelines", nargs="+", choices=PIPELINES, default=list(PIPELINES),
                        help="loaders to compare (see above)")
    parser.add_argument("--batch_size", type=int, default=32, help="samples per batch")
    parser.add_argument("--batches", type=int, default=8, help="timed batches per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches first (worker start-up)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per setting (median reported)")
    parser.add_argument("--deepfakebench", metavar="CHECKOUT",
                        help="a DeepfakeBench checkout: adds its own dataset class as the 'deepfakebench' pipeline")
    parser.add_argument("--deepfakebench_site", metavar="DIR",
                        help="put first on that pipeline's sys.path (its pinned albumentations 1.1.0)")
    parser.add_argument("--deepfakebench_worker", help=argparse.SUPPRESS)  # internal: the subprocess
    parser.add_argument("--stages", action="store_true",
                        help="also time the individual steps (decode, FancyPCA, normalisation, seeding)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.deepfakebench_worker:
        run_deepfakebench(Path(args.deepfakebench_worker))
        return 0
    # One thread per process, as DataLoader workers get for torch (the main process does all the
    # work with 0 workers). Set before any worker forks: OpenCV's pool must not be resized in a child.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(f"bench_loader: {args.config}, dataset {args.dataset}, batch {args.batch_size}, "
          f"{args.batches} timed batches after {args.warmup} warm-up, {args.repeats} repeats, "
          f"{os.cpu_count()} CPUs", flush=True)
    results = run(args)
    print(report(results, args.workers))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
