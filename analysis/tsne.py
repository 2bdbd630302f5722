"""t-SNE of the features a detector saved at test time, coloured by label and by method.

    python training/test.py --weights_path runs/<run> --out runs/<run>/features --opts test.save_features=true
    python -m analysis.tsne --run runs/<run>/features [--max_points 2000] [--out tsne.png]
    python -m analysis.tsne --features runs/<run>/test/DemoFF/features.npz

Features come from ``features.npz`` (written by the Evaluator when
``test.save_features=true``): every test dataset of the source is embedded
together. The manipulation method of a sample is the label name in its
``video_key`` (``dataset/label/video``), e.g. ``DemoFF_swap``. Points are a
deterministic random subset when there are more than ``--max_points``; PCA to
50 dimensions first (standard practice: faster, less noisy). Default output:
``<run>/plots/tsne.png``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np

from analysis.plotting import FAKE_COLOUR, FEATURES_FILE, REAL_COLOUR, add_source_arguments, collect_sources, \
    colours, default_output, method_names, new_figure, save_png
from training.cli import cli_parser, run_cli


def load_features(files: Mapping[str, Path]) -> Dict[str, np.ndarray]:
    """Concatenate ``{dataset: features.npz}`` into feat / label / method / dataset arrays."""
    parts: Dict[str, List[np.ndarray]] = {"feat": [], "label": [], "method": [], "dataset": []}
    for dataset, path in files.items():
        with np.load(path, allow_pickle=False) as data:
            missing = {"feat", "label", "video_key"} - set(data.files)
            if missing:
                raise ValueError(f"{path} lacks {sorted(missing)}; expected a features.npz written by the "
                                 f"Evaluator (test.save_features=true)")
            feat = data["feat"].reshape(len(data["feat"]), -1).astype(np.float32)
            parts["feat"].append(feat)
            parts["label"].append(data["label"].astype(np.int64))
            parts["method"].append(method_names(data["video_key"]))
            parts["dataset"].append(np.full(len(feat), dataset, dtype=object))
    dims = {part.shape[1] for part in parts["feat"]}
    if len(dims) > 1:
        raise ValueError(f"features of {', '.join(files)} have different sizes {sorted(dims)}; "
                         f"embed features of one detector at a time")
    return {name: np.concatenate(values) for name, values in parts.items()}


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE embedding (after PCA to at most 50 dimensions)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(features)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 samples, got {n}; test on more frames (data.frame_num.test)")
    components = min(50, features.shape[1], n)
    reduced = PCA(n_components=components, random_state=seed).fit_transform(features) \
        if features.shape[1] > components else features
    # Perplexity must stay below the number of samples (tiny test sets).
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    # One OpenMP thread: at a few thousand points t-SNE takes seconds anyway, while its spinning
    # OpenMP threads slow it down 10x or more on a machine whose cores are busy (measured).
    with threadpool_limits(limits=1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    random_state=seed).fit_transform(reduced)


def subsample(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def _scatter_by(ax, points: np.ndarray, groups: np.ndarray, title: str, fixed: Optional[Dict[str, str]] = None):
    names = list(dict.fromkeys(groups.tolist()))
    palette = dict(zip(names, colours(len(names))))
    palette.update(fixed or {})
    for name in names:
        chosen = groups == name
        ax.scatter(points[chosen, 0], points[chosen, 1], s=9, alpha=0.75, color=palette[name],
                   label=f"{name} ({int(chosen.sum())})", linewidths=0)
    ax.set_title(title)
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, markerscale=1.6, frameon=False)


def plot_tsne(data: Mapping[str, np.ndarray], path, title: str, max_points: int = 2000, seed: int = 0) -> Path:
    keep = subsample(len(data["label"]), max_points, seed)
    points = embed(data["feat"][keep], seed)
    labels = np.where(data["label"][keep] == 1, "fake", "real").astype(object)
    panels = [(labels, "by label", {"real": REAL_COLOUR, "fake": FAKE_COLOUR}),
              (data["method"][keep], "by manipulation method", None)]
    if len(set(data["dataset"].tolist())) > 1:
        panels.append((data["dataset"][keep], "by dataset", None))
    figure, axes = new_figure(len(panels), max_columns=len(panels), panel_size=(5.6, 4.4))
    for ax, (groups, panel_title, fixed) in zip(axes[0], panels):
        _scatter_by(ax, points, groups, panel_title, fixed)
    figure.suptitle(f"{title} (t-SNE of {len(keep)} samples)", fontsize=11)
    return save_png(figure, path)


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    add_source_arguments(parser, "features")
    parser.add_argument("--max_points", type=int, default=2000, help="subsample to at most this many samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample and of t-SNE")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sources = args.run or args.features
    files = collect_sources(sources, args.names, filename=FEATURES_FILE)
    out = Path(args.out) if args.out else default_output(sources, "tsne.png")
    for detector, per_dataset in files.items():
        path = out if len(files) == 1 else out.with_name(f"{out.stem}_{detector}{out.suffix}")
        print(plot_tsne(load_features(per_dataset), path, title=f"{detector} features",
                        max_points=args.max_points, seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
