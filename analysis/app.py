"""A browser app for single media: drop images or videos, see what the detector says about each face.

    python -m analysis.app --weights_path runs/<run> [--port 7860] [--host 127.0.0.1] [--device auto]

Opens a Gradio page (http://127.0.0.1:7860 by default) where you upload images and videos (several at
once) and get, per input:

* every sampled frame with the faces found: the subject's box (the face that is scored) coloured from
  green (real, P(fake)=0) to red (fake, 1) and labelled with P(fake); grey boxes are faces found but not
  scored (other people, or frames outside the detector's ``data.frame_num.test`` sample);
* the per-frame P(fake) curve of each video, with its mean (the video's score, as metrics.json);
* a Grad-CAM or attention-rollout overlay on each scored face crop (analysis/cam.py), frame detectors only;
* a table of every face box and score, and inputs.csv / frames.csv to download: the files
  ``training/infer.py`` writes for the same inputs.

The scoring is training/inference.py, the library behind infer.py: the same face pipeline
(preprocessing's detection, tracking and alignment), the same ``--num_frames`` sampling and the same
test-time samples, so the app and the CLI give identical numbers. The page only listens on ``--host``;
nothing leaves the machine (Gradio's analytics and share links are off).
"""
from __future__ import annotations

import argparse
import html
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

CAM_METHODS = ("auto", "gradcam", "rollout", "none")
UNSCORED_COLOUR = (160, 160, 160)  # RGB: faces found but not scored
FACE_TABLE_ID = "faces"


# ----------------------------------------------------------------------------- drawing

def prob_colour(prob: float) -> Tuple[int, int, int]:
    """RGB of a P(fake) on the green (real) - yellow - red (fake) scale."""
    from matplotlib import colormaps

    red, green, blue, _ = colormaps["RdYlGn_r"](float(np.clip(prob, 0.0, 1.0)))
    return int(red * 255), int(green * 255), int(blue * 255)


def _label(image: np.ndarray, text: str, left: int, top: int, colour: Tuple[int, int, int], scale: float) -> None:
    import cv2

    thickness = max(1, round(scale * 2))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    top = max(top, height + base + 2)  # keep the label inside the frame for a box at the top edge
    cv2.rectangle(image, (left, top - height - base - 2), (left + width + 4, top), colour, -1)
    cv2.putText(image, text, (left + 2, top - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                cv2.LINE_AA)


def annotate(frame_rgb: np.ndarray, face) -> np.ndarray:
    """The frame with every detection drawn: the scored subject box coloured by its P(fake), others grey."""
    import cv2

    image = frame_rgb.copy()
    scale = max(0.4, image.shape[1] / 900)
    width = max(2, round(image.shape[1] / 250))
    subject = tuple(face.box) if face.box else None
    for detection in face.detections:
        box = tuple(int(v) for v in detection[:4])
        if box != subject:
            cv2.rectangle(image, box[:2], box[2:], UNSCORED_COLOUR, max(1, width // 2))
    if subject:
        colour = prob_colour(face.prob) if face.prob is not None else UNSCORED_COLOUR
        cv2.rectangle(image, subject[:2], subject[2:], colour, width)
        text = f"P(fake) {face.prob:.3f}" if face.prob is not None else "not scored"
        _label(image, text, subject[0], subject[1] - width, colour, scale)
    return image


def overlay(picture: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: ``picture`` ([0, 1] RGB) under the ``heat`` map ([0, 1]) in jet, as analysis/cam.py plots."""
    from matplotlib import colormaps

    import cv2

    coloured = colormaps["jet"](heat)[..., :3]
    image = np.round(255 * ((1 - alpha) * picture + alpha * coloured)).clip(0, 255).astype(np.uint8)
    if image.shape[0] < 224:  # small model inputs (tests, tiny detectors) are enlarged to be seen
        image = cv2.resize(image, (224, 224), interpolation=cv2.INTER_NEAREST)
    return image


def score_curve(results) -> Optional[np.ndarray]:
    """RGB image of P(fake) over the frame index for every video (inputs with more than one score)."""
    from analysis.plotting import colours, new_figure, png_bytes

    videos = [r for r in results if len(r.frame_rows) > 1]
    if not videos:
        return None
    figure, axes = new_figure(1, panel_size=(7.0, 3.2))
    axis = axes[0, 0]
    for result, colour in zip(videos, colours(len(videos))):
        x = [row["frame_index"] for row in result.frame_rows]
        y = [row["prob"] for row in result.frame_rows]
        name = Path(result.path).name
        axis.plot(x, y, marker="o", markersize=3, color=colour, label=f"{name} (mean {result.prob:.3f})")
        axis.axhline(result.prob, color=colour, linestyle="--", linewidth=0.8)
    axis.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("frame index (first frame of a clip for temporal detectors)")
    axis.set_ylabel("P(fake)")
    axis.legend(fontsize=8, loc="best")
    return _decode_png(png_bytes(figure))


def _decode_png(data: bytes) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# ----------------------------------------------------------------------------- analysis

class MediaAnalyser:
    """Scores uploads with an :class:`training.inference.Inferencer` and turns the result into what the
    page shows. Free of Gradio, so it is usable (and tested) without a browser."""

    def __init__(self, inferencer, cam_method: str = "auto"):
        if cam_method not in CAM_METHODS:
            raise ValueError(f"--cam {cam_method!r}: choose one of {', '.join(CAM_METHODS)}")
        self.inferencer, self.cam_method = inferencer, cam_method

    def score(self, paths: Sequence[str]):
        """One :class:`InputResult` per path, named by the file's name (the upload's original name)."""
        results = []
        for path in paths:
            result = self.inferencer.score_path(Path(path), keep_images=True)
            name = Path(path).name
            result.path = name
            for row in result.frame_rows:
                row["input"] = name
            results.append(result)
        return results

    def explanations(self, result) -> List[Tuple[np.ndarray, str]]:
        """(overlay image, caption) per scored crop and CAM method; empty for clip detectors or --cam none."""
        import torch

        from analysis.cam import explain

        scorer = self.inferencer.scorer
        if self.cam_method == "none" or scorer.clip_len > 1 or not result.crops:
            return []
        indices = sorted(result.crops)
        images = torch.stack([scorer.images(result.crops, [i]) for i in indices]).to(self.inferencer.device)
        spec = self.inferencer.detector.input_spec
        mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1)
        std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1)
        pictures = (images * std + mean).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        maps = explain(self.inferencer.detector, images, "both" if self.cam_method == "auto" else self.cam_method)
        probs = {face.index: face.prob for face in result.faces}
        shown = []
        for method, method_maps in maps.items():
            for position, index in enumerate(indices):
                shown.append((overlay(pictures[position], method_maps[position]),
                              f"{result.path} frame {index}: {method}, P(fake) {probs[index]:.3f}"))
        return shown

    def analyse(self, paths: Sequence[str], out_dir: Path) -> Dict[str, object]:
        """Everything the page shows for ``paths``; the CSVs are written to ``out_dir``."""
        from training.inference import write_results

        results = self.score(paths)
        inputs_csv, frames_csv = write_results(out_dir, results)
        frames, crops = [], []
        for result in results:
            for face in result.faces:
                status = f"P(fake) {face.prob:.3f}" if face.prob is not None else (
                    "no face" if face.box is None else "not scored")
                frames.append((annotate(result.frames[face.index], face), f"{result.path} frame {face.index}: "
                                                                          f"{status}"))
            crops += self.explanations(result)
            result.frames, result.crops = {}, {}
        return {"results": results, "frames": frames, "explanations": crops, "curve": score_curve(results),
                "table": faces_table(results, self.inferencer.unit), "csv": [str(inputs_csv), str(frames_csv)]}


def faces_table(results, unit: str) -> str:
    """HTML: one summary line per input, then one row per sampled frame with its boxes and score."""
    lines = ["<div class='summary'>"]
    for r in results:
        name = html.escape(r.path)
        if r.status == "done":
            lines.append(f"<p data-input='{name}' data-prob='{r.prob:.6f}'><b>{name}</b>: P(fake) = "
                         f"<b>{r.prob:.4f}</b> (mean over {len(r.frame_rows)} {unit if len(r.frame_rows) > 1 else unit[:-1]}; a face in {r.n_faces} of "
                         f"{r.n_sampled} sampled frame(s))</p>")
        else:
            lines.append(f"<p data-input='{name}' data-status='failed'><b>{name}</b>: not scored "
                         f"({html.escape(r.reason)})</p>")
    lines.append("</div>")
    lines.append(f"<table id='{FACE_TABLE_ID}-table'><thead><tr><th>input</th><th>frame</th><th>box (left, top, "
                 "right, bottom)</th><th>face</th><th>P(fake)</th><th>other faces found</th></tr></thead><tbody>")
    for r in results:
        for face in r.faces:
            box = ", ".join(str(v) for v in face.box) if face.box else ""
            prob = f"{face.prob:.4f}" if face.prob is not None else ""
            others = sum(1 for d in face.detections if face.box is None or [int(v) for v in d[:4]] != face.box)
            lines.append(f"<tr data-input='{html.escape(r.path)}' data-frame='{face.index}' data-box='{box}' "
                         f"data-prob='{prob}'><td>{html.escape(r.path)}</td><td>{face.index}</td><td>{box}</td>"
                         f"<td>{face.source}</td><td>{prob or 'not scored'}</td><td>{others}</td></tr>")
    lines.append("</tbody></table>")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- page

def build_ui(analyser: MediaAnalyser, title: str):
    """The Gradio page (``gr.Blocks``) over ``analyser``."""
    import gradio as gr

    def run(files, progress=gr.Progress()):
        if not files:
            raise gr.Error("Upload one or more images or videos first.")
        paths = [f if isinstance(f, str) else f.name for f in files]
        progress(0, desc=f"scoring {len(paths)} input(s)")
        shown = analyser.analyse(paths, Path(tempfile.mkdtemp(prefix="clipforensics_app_")))
        return shown["table"], shown["frames"], shown["curve"], shown["explanations"], shown["csv"]

    from training.inference import IMAGE_EXTENSIONS
    from preprocessing.video import VIDEO_EXTENSIONS

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"## Deepfake detector: {html.escape(title)}\nUpload images or videos. Each face the "
                    "detector scores is boxed from green (real) to red (fake) with its P(fake); grey boxes are "
                    "faces found but not scored. Same pipeline and numbers as `training/infer.py`.")
        with gr.Row():
            uploads = gr.File(label="Images or videos", file_count="multiple",
                              file_types=list(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS), elem_id="uploads")
            csv_files = gr.File(label="inputs.csv and frames.csv (as training/infer.py writes them)",
                                file_count="multiple", interactive=False, elem_id="csv")
        button = gr.Button("Analyse", variant="primary", elem_id="analyse")
        table = gr.HTML(elem_id=FACE_TABLE_ID)
        frames = gr.Gallery(label="Faces found, per sampled frame", columns=4, height="auto", elem_id="frames")
        curve = gr.Image(label="P(fake) per frame (videos)", type="numpy", elem_id="curve", interactive=False)
        cams = gr.Gallery(label="Where the detector looks (scored face crops)", columns=6, height="auto",
                          elem_id="cams")
        button.click(run, inputs=uploads, outputs=[table, frames, curve, cams, csv_files], concurrency_limit=1)
    return page


def build_parser() -> argparse.ArgumentParser:
    from training.cli import cli_parser

    parser = cli_parser(__file__, __doc__)
    parser.add_argument("--weights_path", required=True, help="run directory (runs/<run>) or checkpoint file")
    parser.add_argument("--detector_path", help="detector YAML (default: config.yaml of the run directory)")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--num_frames", type=int, default=32,
                        help="frames sampled evenly per video before face detection (32, as infer.py)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--cam", default="auto", choices=CAM_METHODS,
                        help="overlay on the scored crops: auto (Grad-CAM + rollout for ViTs), gradcam, "
                             "rollout or none")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: the whole network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on")
    return parser


def launch(page, host: str, port: int, block: bool = True):
    """Serve ``page`` on host:port; ``block=False`` returns at once (tests). Returns the page's URL."""
    _, url, _ = page.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
                            ssr_mode=False, quiet=not block, show_error=True)
    return url


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from an offline lab machine
    from training.inference import load_inferencer

    inferencer = load_inferencer(args.weights_path, args.detector_path, args.opts, args.device, args.num_frames)
    title = Path(args.weights_path).name
    print(f"analysis.app: serving {args.weights_path} on http://{args.host}:{args.port} (Ctrl+C stops)")
    launch(build_ui(MediaAnalyser(inferencer, args.cam), title), args.host, args.port)
    return 0


if __name__ == "__main__":
    import sys

    from training.cli import run_cli

    sys.exit(run_cli(main))
