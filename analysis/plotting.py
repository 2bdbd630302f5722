"""Shared helpers of the analysis commands: figures, PNG output, finding a run's result files.

Figures are built on matplotlib's object API with an explicit Agg canvas
(:func:`new_figure`), never through ``pyplot``: no global backend switch, no
figure registry, nothing happens at import, and the commands run the same on
a headless server as inside a notebook.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from training.engine.run_dir import FEATURES_FILE, METRICS_FILE, PLOTS_DIR, PREDICTIONS_FILE  # noqa: F401 - re-exported
from training.utils.atomic import atomic_path

PathLike = Union[str, os.PathLike]


REAL_COLOUR = "#1f77b4"
FAKE_COLOUR = "#d62728"
DPI = 120


# ------------------------------------------------------------------------ figures

def new_figure(n_panels: int = 1, max_columns: int = 3, panel_size: Tuple[float, float] = (4.2, 3.8),
               rows_per_panel: int = 1):
    """``(figure, axes)``: a grid for ``n_panels`` panels (``rows_per_panel`` rows each,
    stacked), drawn by an Agg canvas; ``axes`` is a 2-D array, unused panels hidden."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    columns = max(1, min(max_columns, n_panels))
    rows = max(1, math.ceil(n_panels / columns)) * rows_per_panel
    figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows))
    FigureCanvasAgg(figure)
    axes = np.asarray(figure.subplots(rows, columns, squeeze=False))
    return figure, axes


def panel_axes(axes: np.ndarray, n_panels: int, rows_per_panel: int = 1) -> List[List[object]]:
    """The axes of each panel (a list of ``rows_per_panel`` axes, top to bottom); hides the rest."""
    columns = axes.shape[1]
    panels = []
    for index in range(axes.shape[0] // rows_per_panel * columns):
        block, column = divmod(index, columns)
        cells = [axes[block * rows_per_panel + r, column] for r in range(rows_per_panel)]
        if index < n_panels:
            panels.append(cells)
        else:
            for cell in cells:
                cell.set_visible(False)
    return panels


def save_png(figure, path: PathLike, tight_bbox: bool = False) -> Path:
    """Write ``figure`` as a PNG atomically; returns the path. ``tight_bbox`` crops to the
    drawn content instead of re-laying out the grid (needed when a colorbar spans panels)."""
    path = Path(path)
    if not tight_bbox:
        figure.tight_layout()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            figure.savefig(handle, format="png", dpi=DPI, bbox_inches="tight" if tight_bbox else None)
    return path


def png_bytes(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def colours(n: int) -> List[str]:
    """``n`` distinguishable colours (tab10, then tab20)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


# ------------------------------------------------------------ scores per video

def video_scores(video_keys: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(label, mean P(fake)) per video, videos keyed by their full ``video_key``: the
    protocol of training/metrics.py (the tests check that plotted AUCs equal metrics.json)."""
    _, codes = np.unique(np.asarray(video_keys, dtype=str), return_inverse=True)
    counts = np.bincount(codes)
    return (np.bincount(codes, weights=labels) / counts > 0.5).astype(np.int64), \
        np.bincount(codes, weights=probs) / counts


def method_names(video_keys: Iterable[str]) -> np.ndarray:
    """Manipulation method of each sample: the label name in ``dataset/label/video``."""
    names = []
    for key in video_keys:
        parts = str(key).split("/")
        if len(parts) < 3:
            raise ValueError(f"video_key {key!r} is not 'dataset/label/video'; cannot tell its method")
        names.append(parts[1])
    return np.asarray(names, dtype=object)


# -------------------------------------------------------- finding result files

def _dataset_files(folder: Path, filename: str) -> Dict[str, Path]:
    """``{dataset: file}`` in the order of the folder's metrics.json (the order of the tables: the config's
    data.test_dataset), then any others alphabetically, so plots list datasets as the tables do."""
    import json

    found = {path.parent.name: path for path in sorted(folder.glob(f"*/{filename}"))}
    metrics = folder / METRICS_FILE
    order = list(json.loads(metrics.read_text(encoding="utf-8"))) if metrics.is_file() else []
    return {name: found[name] for name in dict.fromkeys([*order, *found]) if name in found}


def find_result_files(source: PathLike, filename: str = PREDICTIONS_FILE) -> Dict[str, Dict[str, Path]]:
    """``{detector: {dataset: file}}`` for one source, which may be

    * a training run directory (``runs/<run>/test/<dataset>/<filename>``);
    * one row of ``training/test.py --out`` (``<out>/<row>/<dataset>/<filename>``);
    * a whole ``training/test.py --out`` directory (one detector per row);
    * the file itself (its dataset is the folder it is in).
    """
    source = Path(source)
    if source.is_file():
        return {_detector_name_of_file(source): {source.parent.name: source}}
    if not source.is_dir():
        raise FileNotFoundError(f"{source} does not exist; pass a run directory (runs/<run>), a "
                                f"training/test.py --out directory or a {filename} file")
    for folder in (source / "test", source):
        files = _dataset_files(folder, filename)
        if files:
            return {source.name: files}
    rows = {row.name: _dataset_files(row, filename) for row in sorted(source.iterdir()) if row.is_dir()}
    rows = {name: files for name, files in rows.items() if files and name != "perturbed"}
    if rows:
        return rows
    raise FileNotFoundError(f"No {filename} under {source}: expected {source}/test/<dataset>/{filename} "
                            f"(a training run), {source}/<dataset>/{filename} or "
                            f"{source}/<detector>/<dataset>/{filename} (training/test.py --out)."
                            + (" Features are written only when testing with test.save_features=true, e.g. "
                               f"`python training/test.py --weights_path {source} --out {source}/features "
                               f"--opts test.save_features=true`." if filename == FEATURES_FILE else ""))


def _detector_name_of_file(path: Path) -> str:
    # runs/<run>/test/<dataset>/file -> <run>; <out>/<row>/<dataset>/file -> <row>
    parents = path.resolve().parents
    if len(parents) > 2 and parents[1].name == "test":
        return parents[2].name
    return parents[1].name if len(parents) > 1 else path.stem


def collect_sources(sources: Sequence[PathLike], names: Optional[Sequence[str]] = None,
                    filename: str = PREDICTIONS_FILE) -> Dict[str, Dict[str, Path]]:
    """Merge several sources into ``{detector: {dataset: file}}``; ``names`` renames the
    detectors in order (one per detector found)."""
    merged: Dict[str, Dict[str, Path]] = {}
    for source in sources:
        for detector, files in find_result_files(source, filename).items():
            if detector in merged and Path(source).is_file():
                merged[detector].update(files)  # several files of one run
            elif detector in merged:
                raise ValueError(f"Two sources are both named {detector!r}; give --names to tell them apart")
            else:
                merged[detector] = dict(files)
    if names:
        if len(names) != len(merged):
            raise ValueError(f"--names has {len(names)} entries but the sources hold {len(merged)} "
                             f"detector(s): {', '.join(merged)}")
        merged = dict(zip(names, merged.values()))
    return merged


def default_output(sources: Sequence[PathLike], filename: str) -> Path:
    """``<run>/plots/<filename>`` for the first source (the folder of a file source)."""
    first = Path(sources[0])
    if first.is_file():
        parents = first.resolve().parents
        first = parents[2] if len(parents) > 2 and parents[1].name == "test" else first.parent
    return first / PLOTS_DIR / filename


def add_source_arguments(parser, what: str = "predictions") -> None:
    """``--run`` / ``--predictions`` (one of them) and ``--names``."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--run", nargs="+", help="run directories (runs/<run>) or training/test.py --out directories")
    group.add_argument(f"--{what}", nargs="+", help=f"{what} files")
    parser.add_argument("--names", nargs="+", help="legend names, one per detector found")
    parser.add_argument("--out", help="output PNG (default: <first run>/plots/<plot>.png)")


# --------------------------------------------------------------------------- CLI

PLOT_COMMANDS = {
    "analysis.roc": "ROC curves per dataset (frame and video level)",
    "analysis.histograms": "score histograms, real vs fake",
    "analysis.tsne": "t-SNE of saved features (test.save_features=true)",
    "analysis.cam": "Grad-CAM / attention rollout on test faces",
    "analysis.robustness": "metric vs degradation severity (training/test.py --perturb)",
    "analysis.report": "report.html of a run, with all of the above",
}


def build_parser():
    from training.cli import cli_parser

    listing = "\n".join(f"  python -m {module:<22} {what}" for module, what in PLOT_COMMANDS.items())
    return cli_parser(__file__, f"{__doc__}\nThis module only holds shared helpers; the plots are made by:\n\n"
                                f"{listing}\n\nEach takes --help.")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help()  # nothing to run here: say where the plots are made
    return 0


if __name__ == "__main__":
    import sys

    from training.cli import run_cli

    sys.exit(run_cli(main))
