"""Result tables: exact CSV round trip, markdown layout, LaTeX well-formedness."""
from __future__ import annotations

import csv

import pytest

from analysis.tables import build_table, read_table_csv, write_tables

RESULTS = {
    "clip_ln": {"FF++_c23": {"frame_auc": 0.9912345678901234, "video_auc": 0.998, "frame_eer": 0.04},
                "Celeb-DF-v2": {"frame_auc": 0.8123456789, "video_auc": 0.85, "frame_eer": 0.21}},
    "xception": {"FF++_c23": {"frame_auc": 0.95, "video_auc": 0.97, "frame_eer": 0.08},
                 "Celeb-DF-v2": {"frame_auc": 0.70, "video_auc": 0.73, "frame_eer": 0.35}},
    "partial": {"FF++_c23": {"frame_auc": 0.90, "video_auc": 0.91, "frame_eer": 0.10}},
}
FOOTNOTE = "32 frames per video; video AUC over per-video mean P(fake)."


def table_rows(markdown):
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Detector")]


def test_csv_parses_back_to_the_exact_numbers(tmp_path):
    write_tables(RESULTS, tmp_path / "table", metrics=("frame_auc", "video_auc"), extra=("frame_eer",))
    assert read_table_csv(tmp_path / "table.csv") == RESULTS


def test_markdown_has_one_row_per_detector_and_a_correct_mean(tmp_path):
    markdown = write_tables(RESULTS, tmp_path / "table", footnote=FOOTNOTE)
    assert (tmp_path / "table.md").read_text() == markdown
    rows = table_rows(markdown)
    assert [row.split(" | ")[0].lstrip("| ") for row in rows] == list(RESULTS)
    clip_cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert clip_cells[1:] == ["99.12", "99.80", "81.23", "85.00", "90.18", "92.40"]
    assert markdown.rstrip().endswith(FOOTNOTE)


def test_mean_column_in_csv_is_the_mean_over_datasets(tmp_path):
    write_tables(RESULTS, tmp_path / "table")
    with open(tmp_path / "table.csv", newline="") as handle:
        rows = {row["Detector"]: row for row in csv.DictReader(handle)}
    assert float(rows["xception"]["Mean:video_auc"]) == pytest.approx((0.97 + 0.73) / 2, abs=1e-15)
    assert rows["partial"]["Mean:video_auc"] == ""


def test_missing_dataset_is_shown_as_a_dash(tmp_path):
    markdown = write_tables(RESULTS, tmp_path / "table")
    partial = [cell.strip() for cell in table_rows(markdown)[2].strip("|").split("|")]
    assert partial == ["partial", "90.00", "91.00", "–", "–", "–", "–"]
    assert "partial & 90.00 & 91.00 & -- & -- & -- & --" in (tmp_path / "table.tex").read_text()


def test_latex_is_well_formed(tmp_path):
    write_tables(RESULTS, tmp_path / "table", footnote=FOOTNOTE + " 100% of_videos")
    tex = (tmp_path / "table.tex").read_text()
    assert tex.count("{") == tex.count("}")
    assert tex.count(r"\begin{") == tex.count(r"\end{")
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\multicolumn{2}{c}{FF++\_c23}",
                    r"\cmidrule(lr){2-3}", r"\begin{tablenotes}", r"100\% of\_videos"):
        assert command in tex
    body = tex.split(r"\midrule")[1]
    assert "clip_ln" not in body and r"clip\_ln" in body
    # Header + each data row have the same number of cells: 1 + 3 groups x 2 metrics.
    for line in tex.splitlines():
        if line.endswith(r"\\") and "multicolumn" not in line:
            assert line.count(" & ") == 6, line


def test_best_value_per_column_is_bold_lower_is_better_for_eer(tmp_path):
    write_tables(RESULTS, tmp_path / "table", metrics=("frame_auc",), extra=("frame_eer",))
    tex = (tmp_path / "table.tex").read_text()
    assert r"clip\_ln & \textbf{99.12} & \textbf{4.00} & \textbf{81.23} & \textbf{21.00}" in tex
    assert r"\textbf{90.00}" not in tex  # partial's FF++ AUC is not the best


def test_build_table_columns_and_reserved_name():
    table = build_table(RESULTS, extra=("frame_eer",))
    assert table.columns[:3] == [("FF++_c23", "frame_auc"), ("FF++_c23", "video_auc"), ("FF++_c23", "frame_eer")]
    assert table.columns[-3:] == [("Mean", "frame_auc"), ("Mean", "video_auc"), ("Mean", "frame_eer")]
    with pytest.raises(ValueError, match="reserved"):
        build_table({"a": {"Mean": {"frame_auc": 0.5}}})


def test_papers_metrics_have_their_titles_in_every_format(tmp_path):
    # Registry names (training/metrics.py METRICS) -> registry titles in markdown, LaTeX and the report.
    from analysis.report import detail_table, results_table

    results = {"gend": {"CDF": {"video_auc": 0.9, "video_map": 0.8, "video_ap_real": 0.7,
                                "video_tpr_at_fpr_0.1pct": 0.2, "video_eer": 0.1}},
               "ln": {"CDF": {"video_auc": 0.8, "video_map": 0.85, "video_ap_real": 0.6,
                              "video_tpr_at_fpr_0.1pct": 0.3, "video_eer": 0.2}}}
    extra = ("video_map", "video_ap_real", "video_tpr_at_fpr_0.1pct", "video_eer")
    markdown = write_tables(results, tmp_path / "t", metrics=("video_auc",), extra=extra)
    header = markdown.splitlines()[0]
    for title in ("CDF Video AUC", "CDF Video mAP", "CDF Video AP real", "CDF Video TPR@0.1%FPR", "Mean Video EER"):
        assert title in header
    tex = (tmp_path / "t.tex").read_text()
    assert r"\textbf{85.00}" in tex and r"\textbf{10.00}" in tex  # best mAP is the max, best EER the min
    assert "Video mAP (%)" in results_table(results, extra=extra)
    assert "Video TPR@0.1%FPR (%)" in detail_table(results["gend"])


def test_unknown_metric_name_lists_the_registry():
    with pytest.raises(KeyError, match="video_map"):
        build_table(RESULTS, metrics=("video_mAP",))
