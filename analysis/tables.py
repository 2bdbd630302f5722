"""Result tables: one row per detector (or ablation), (dataset, metric) columns.

``results`` is ``{row_name: {dataset: metrics_dict}}`` where ``metrics_dict`` is
one dataset's entry of ``metrics.json``. The same table is rendered three ways:

* Markdown for docs and the terminal (percentages, 2 decimals);
* CSV with full-precision floats, so it parses back (:func:`read_table_csv`)
  to exactly the numbers in ``metrics.json``;
* LaTeX (booktabs + threeparttable), best value per column in bold.

A missing dataset for a row is shown as an en dash. The Mean column of a row
that lacks a dataset is left empty too: a mean over fewer datasets would not be
comparable with the other rows.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from training.metrics import get_metric
from training.utils.atomic import atomic_write_text

MEAN = "Mean"
MISSING_MARK = "–"  # en dash
_CSV_SEPARATOR = ":"  # header cell "<dataset>:<metric>"; metric names never contain it

Results = Mapping[str, Mapping[str, Mapping[str, Any]]]


@dataclass
class Table:
    """A rendered-format-independent table.

    ``columns`` are (dataset, metric) pairs, the Mean columns last with dataset
    ``MEAN``; ``values[r][c]`` is a float or None (missing).
    """

    row_names: List[str]
    datasets: List[str]
    metrics: List[str]
    columns: List[Tuple[str, str]]
    values: List[List[Optional[float]]]


def build_table(results: Results, metrics: Sequence[str] = ("frame_auc", "video_auc"),
                extra: Sequence[str] = ()) -> Table:
    """Rows x (dataset, metric) columns plus one Mean column per metric.

    ``extra`` names further metrics (e.g. ``frame_eer``, ``video_map``)
    shown after ``metrics`` within each dataset group, with their own Mean.
    Metric names are those of ``training.metrics.METRICS`` (titles come from there).
    """
    metrics = list(dict.fromkeys([*metrics, *extra]))
    for metric in metrics:
        get_metric(metric)  # an unknown name fails here, listing the known ones
    datasets = _datasets_in_order(results)
    if MEAN in datasets:
        raise ValueError(f"a dataset is named {MEAN!r}, which is reserved for the mean column; rename it")
    columns = [(dataset, metric) for dataset in datasets for metric in metrics]
    columns += [(MEAN, metric) for metric in metrics]

    values = []
    for row_name, per_dataset in results.items():
        cells = [_metric_value(per_dataset, dataset, metric) for dataset in datasets for metric in metrics]
        cells += [_mean([_metric_value(per_dataset, d, metric) for d in datasets]) for metric in metrics]
        values.append(cells)
    return Table(row_names=list(results), datasets=datasets, metrics=metrics, columns=columns, values=values)


def write_tables(results: Results, out_prefix: Union[str, os.PathLike], footnote: Optional[str] = None,
                 metrics: Sequence[str] = ("frame_auc", "video_auc"), extra: Sequence[str] = (),
                 row_label: str = "Detector") -> str:
    """Write ``<prefix>.md``, ``<prefix>.csv`` and ``<prefix>.tex``; return the markdown."""
    table = build_table(results, metrics=metrics, extra=extra)
    markdown = to_markdown(table, footnote=footnote, row_label=row_label)
    prefix = os.fspath(out_prefix)
    atomic_write_text(prefix + ".md", markdown)
    atomic_write_text(prefix + ".csv", to_csv(table, row_label=row_label))
    atomic_write_text(prefix + ".tex", to_latex(table, footnote=footnote, row_label=row_label))
    return markdown


def read_table_csv(path: Union[str, os.PathLike]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Parse a table CSV back to ``{row_name: {dataset: {metric: value}}}``.

    Mean columns are dropped (they are derived); empty cells (missing datasets)
    are left out.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file; expected a table written by analysis.tables.write_tables")
        columns = [_split_header_cell(path, cell) for cell in header[1:]]
        results: Dict[str, Dict[str, Dict[str, float]]] = {}
        for row in reader:
            row_results = results.setdefault(row[0], {})
            for (dataset, metric), cell in zip(columns, row[1:]):
                if dataset == MEAN or cell == "":
                    continue
                row_results.setdefault(dataset, {})[metric] = float(cell)
    return results


# ------------------------------------------------------------------------ values

def _datasets_in_order(results: Results) -> List[str]:
    seen: Dict[str, None] = {}
    for per_dataset in results.values():
        seen.update(dict.fromkeys(per_dataset))
    return list(seen)


def _metric_value(per_dataset: Mapping[str, Mapping[str, Any]], dataset: str, metric: str) -> Optional[float]:
    value = per_dataset.get(dataset, {}).get(metric)
    return None if value is None else float(value)


def _mean(values: List[Optional[float]]) -> Optional[float]:
    if not values or any(value is None for value in values):
        return None
    return math.fsum(values) / len(values)


def _is_count(metric: str) -> bool:
    return get_metric(metric).is_count


def _lower_is_better(metric: str) -> bool:
    return not get_metric(metric).higher_is_better


def _format_value(metric: str, value: Optional[float], missing: str = MISSING_MARK) -> str:
    if value is None:
        return missing
    if _is_count(metric):
        return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"
    return f"{100.0 * value:.2f}"


def _metric_label(metric: str, all_metrics: Sequence[str]) -> str:
    """The registry title ('Frame AUC'); only the level ('Frame') when all metrics share the kind."""
    title = get_metric(metric).title
    suffix = _shared_suffix(all_metrics)
    return title[: -len(suffix) - 1] if suffix else title


def _shared_suffix(metrics: Sequence[str]) -> Optional[str]:
    """The kind ('AUC') every metric's title ends with, if they all share one (and are not counts)."""
    entries = [get_metric(metric) for metric in metrics]
    kinds = {entry.kind for entry in entries}
    if len(kinds) == 1 and len(entries) > 1 and not any(entry.is_count for entry in entries):
        kind = kinds.pop()
        return kind if all(entry.title.endswith(" " + kind) for entry in entries) else None
    return None


def _corner_label(table: Table, row_label: str) -> str:
    suffix = _shared_suffix(table.metrics)
    return f"{row_label} ({suffix}, %)" if suffix else row_label


# ---------------------------------------------------------------------- renderers

def to_markdown(table: Table, footnote: Optional[str] = None, row_label: str = "Detector") -> str:
    header = [_corner_label(table, row_label)]
    header += [f"{dataset} {_metric_label(metric, table.metrics)}" for dataset, metric in table.columns]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    for name, cells in zip(table.row_names, table.values):
        formatted = [_format_value(metric, value) for (_, metric), value in zip(table.columns, cells)]
        lines.append("| " + " | ".join([_escape_markdown(name)] + formatted) + " |")
    text = "\n".join(lines) + "\n"
    if footnote:
        text += f"\n{footnote}\n"
    return text


def to_csv(table: Table, row_label: str = "Detector") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([row_label] + [f"{dataset}{_CSV_SEPARATOR}{metric}" for dataset, metric in table.columns])
    for name, cells in zip(table.row_names, table.values):
        # repr: shortest string that parses back to the identical float.
        writer.writerow([name] + ["" if value is None else repr(value) for value in cells])
    return buffer.getvalue()


def to_latex(table: Table, footnote: Optional[str] = None, row_label: str = "Detector") -> str:
    n_metrics = len(table.metrics)
    groups = table.datasets + [MEAN]
    column_spec = "l " + " ".join(["c" * n_metrics] * len(groups))
    first_metric_column = 2
    top = [""] + [rf"\multicolumn{{{n_metrics}}}{{c}}{{{_escape_latex(group)}}}" for group in groups]
    rules = [rf"\cmidrule(lr){{{first_metric_column + g * n_metrics}-{first_metric_column + (g + 1) * n_metrics - 1}}}"
             for g in range(len(groups))]
    second = [_escape_latex(_corner_label(table, row_label))]
    second += [_escape_latex(_metric_label(metric, table.metrics)) for _, metric in table.columns]

    lines = [
        r"% Requires \usepackage{booktabs} and \usepackage{threeparttable}.",
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{threeparttable}",
        rf"\begin{{tabular}}{{{column_spec}}}",
        r"\toprule",
        " & ".join(top) + r" \\",
        " ".join(rules),
        " & ".join(second) + r" \\",
        r"\midrule",
    ]
    best = _best_per_column(table)
    for r, (name, cells) in enumerate(zip(table.row_names, table.values)):
        formatted = []
        for c, ((_, metric), value) in enumerate(zip(table.columns, cells)):
            text = _format_value(metric, value, missing="--")
            formatted.append(rf"\textbf{{{text}}}" if r in best[c] else text)
        lines.append(" & ".join([_escape_latex(name)] + formatted) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if footnote:
        lines += [r"\begin{tablenotes}\footnotesize", rf"\item {_escape_latex(footnote)}", r"\end{tablenotes}"]
    lines += [r"\end{threeparttable}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def _best_per_column(table: Table) -> List[set]:
    """Row indices holding the best displayed value of each column (ties all bold)."""
    best = []
    for c, (_, metric) in enumerate(table.columns):
        # Compare what is printed, so equal-looking values are bolded together.
        shown = {r: float(_format_value(metric, cells[c])) for r, cells in enumerate(table.values)
                 if cells[c] is not None and not _is_count(metric)}
        if _is_count(metric) or len(shown) < 2:
            best.append(set())
            continue
        target = min(shown.values()) if _lower_is_better(metric) else max(shown.values())
        best.append({r for r, value in shown.items() if value == target})
    return best


def _split_header_cell(path, cell: str) -> Tuple[str, str]:
    dataset, separator, metric = cell.rpartition(_CSV_SEPARATOR)
    if not separator:
        raise ValueError(f"{path}: header cell {cell!r} is not '<dataset>{_CSV_SEPARATOR}<metric>'; "
                         f"was this file written by analysis.tables.write_tables?")
    return dataset, metric


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "–": "--",
}


def _escape_latex(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def _escape_markdown(text: str) -> str:
    return str(text).replace("|", r"\|")


# --------------------------------------------------------------------------- CLI


def load_results(sources: Sequence[Union[str, os.PathLike]],
                 names: Optional[Sequence[str]] = None) -> Dict[str, Mapping[str, Mapping[str, Any]]]:
    """``{row: {dataset: metrics}}`` from run directories (their metrics.json: one row named after
    the run) and training/test.py --out folders or their metrics.json (one row per tested detector)."""
    import json
    from pathlib import Path

    from training.engine.run_dir import METRICS_FILE
    from training.errors import UserError

    results: Dict[str, Mapping[str, Mapping[str, Any]]] = {}
    for source in sources:
        path = Path(source)
        path = path / METRICS_FILE if path.is_dir() else path
        if not path.is_file():
            raise UserError(f"{path} not found: pass run directories (runs/<run>), training/test.py --out "
                            f"folders or their {METRICS_FILE}.")
        data = json.loads(path.read_text(encoding="utf-8"))
        one_run = all(isinstance(v, Mapping) and not any(isinstance(x, Mapping) for x in v.values())
                      for v in data.values())
        rows = {path.parent.name: data} if one_run else data
        for row, per_dataset in rows.items():
            if row in results:
                raise UserError(f"two sources give a row named {row!r}; pass --names to tell them apart.")
            results[row] = per_dataset
    if names:
        if len(names) != len(results):
            raise UserError(f"--names has {len(names)} entries but the sources give {len(results)} rows "
                            f"({', '.join(results)}).")
        results = dict(zip(names, results.values()))
    return results


def build_parser():
    from training.cli import cli_parser

    parser = cli_parser(__file__, "Write one cross-dataset table (md, csv, tex) from existing metrics.json files, "
                                  "without testing again.\n\n    python -m analysis.tables --results runs/<runA> "
                                  "runs/<runB> results/cmp --out results/table [--extra_metrics]")
    parser.add_argument("--results", nargs="+", required=True, metavar="PATH",
                        help="run directories, training/test.py --out folders, or metrics.json files")
    parser.add_argument("--names", nargs="+", help="row names, one per row found (default: run names)")
    parser.add_argument("--out", required=True, help="output prefix: writes <out>.md, <out>.csv and <out>.tex")
    parser.add_argument("--extra_metrics", action="store_true", help="add EER/AP/TPR@1%%FPR columns")
    parser.add_argument("--footnote", help="footnote under the markdown and LaTeX tables")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from training.engine.testing import metric_columns

    print(write_tables(load_results(args.results, args.names), args.out, footnote=args.footnote,
                       extra=metric_columns(args.extra_metrics)))
    print(args.out + ".md")
    return 0


if __name__ == "__main__":
    import sys

    from training.cli import run_cli

    sys.exit(run_cli(main))
