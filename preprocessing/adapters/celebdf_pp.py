"""Celeb-DF++ (Li et al. 2025; github.com/OUC-VAS/Celeb-DF-PP), also called CDFv3.

Layout (the official release's "Dataset Structure", after preprocessing each video folder)::

    <root>/Celeb-real/frames/id<k>_<nnnn>/                      real (Celeb-DF's 590)
    <root>/YouTube-real/frames/<nnnnn>/                         real (Celeb-DF's 300)
    <root>/Celeb-synthesis/<Scenario>/<Method>/frames/<video>/  fake
    <root>/List_of_testing_videos.txt                           "<1 real | 0 fake> <path relative to root>"

``<Scenario>`` is ``FaceSwap`` (Celeb-DF, BlendFace, GHOST, HifiFace, InSwapper,
MobileFaceSwap, SimSwap, UniFace), ``FaceReenact`` (DaGAN, FSRT, HyperReenact, LIA,
LivePortrait, MCNET, TPSMM) or ``TalkingFace`` (AniTalker, EchoMimic, EDTalk, FLOAT,
IP_LAP, Real3DPortrait, SadTalker). test = the official list (Celeb-DF's 178 test
reals; 200 fakes per FS/FR method, 300 per TF method). train = every other video;
val is carved from it by identity as for Celeb-DF (every 10th identity in natural
order; a fake whose identities straddle train and val is left out, reported).

Writes ``Celeb-DF++.json`` (all methods), one per scenario (``Celeb-DF++-FS``,
``-FR``, ``-TF``) and one per method (``Celeb-DF++-FS-BlendFace`` ...), each with all
reals: GenD's CDFv3 test tables (src/utils/files.py, ``CDFv3.get_test_dict``).
A fake's video key is ``<Scenario>/<Method>/<name>`` (method folders reuse names);
identity = the first ``id<k>`` of its name, source = ``id<t>_<nnnn>`` when the name
follows Celeb-DF's ``id<t>_id<s>_<nnnn>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

from training.registry import DATASET_ADAPTERS

from .celebdf import identities_of
from .common import (AdapterContext, AdapterError, AdapterResult, IndexBuilder, carve_by_identity, require_file,
                     split_of_group)
from .scan import celeb_source, listed_videos

DATASET = "Celeb-DF++"
REAL_FOLDERS = ("Celeb-real", "YouTube-real")
SYNTHESIS = "Celeb-synthesis"
SCENARIOS = {"FaceSwap": "FS", "FaceReenact": "FR", "TalkingFace": "TF"}
TEST_LIST = "List_of_testing_videos.txt"
REAL_LABEL, FAKE_LABEL = "CelebDFpp_real", "CelebDFpp_fake"
VAL_PERIOD = 10

Video = Tuple[str, str]  # (folder relative to root, video name)


def read_test_list(path: Path) -> Set[Video]:
    listed = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        relative = Path(fields[-1].replace("\\", "/"))
        top = relative.parts[0] if relative.parts else ""
        if len(fields) != 2 or top not in (*REAL_FOLDERS, SYNTHESIS) or \
                (top == SYNTHESIS and (len(relative.parts) != 4 or relative.parts[1] not in SCENARIOS)):
            raise AdapterError(f"{path}, line {number}: expected '<label> <folder>/<video>.mp4' with folder "
                               f"Celeb-real, YouTube-real or {SYNTHESIS}/<FaceSwap|FaceReenact|TalkingFace>/"
                               f"<Method>, got {line!r}. Use the official {TEST_LIST}.")
        listed.add((relative.parent.as_posix(), relative.stem))
    return listed


def video_key(folder: str, name: str) -> str:
    return name if folder in REAL_FOLDERS else f"{Path(folder).relative_to(SYNTHESIS).as_posix()}/{name}"


def fake_folders(root: Path) -> List[str]:
    found = []
    for scenario in SCENARIOS:
        top = root / SYNTHESIS / scenario
        if top.is_dir():
            found += [f"{SYNTHESIS}/{scenario}/{m.name}" for m in sorted(top.iterdir()) if m.is_dir()]
    return found


def _identity(folder: str, name: str) -> Optional[str]:
    return None if folder == "YouTube-real" else identities_of(folder, name)[0]


@DATASET_ADAPTERS.register(DATASET)
def celebdf_pp(context: AdapterContext) -> AdapterResult:
    root = context.dataset_root
    test = read_test_list(require_file(root / TEST_LIST, f"{DATASET} test list",
                                       f"It ships in the {DATASET} release; copy it into {root}."))
    folders = list(REAL_FOLDERS) + fake_folders(root)
    if len(folders) == len(REAL_FOLDERS):
        raise AdapterError(f"{DATASET}: no method folder under {root / SYNTHESIS}/<FaceSwap|FaceReenact|TalkingFace>/. "
                           f"Extract the release there and preprocess each method folder.")
    on_disk: Dict[str, List[str]] = {folder: listed_videos(root / folder) for folder in folders}
    train_videos = [(f, v) for f, names in on_disk.items() for v in names if (f, v) not in test]
    assignment = carve_by_identity({i for f, v in train_videos for i in identities_of(f, v)}, VAL_PERIOD, ("val",))
    builder = IndexBuilder(context, DATASET, [REAL_LABEL, FAKE_LABEL])

    def add(folder: str, name: str, split: str) -> None:
        fake = folder not in REAL_FOLDERS
        builder.add(FAKE_LABEL if fake else REAL_LABEL, split, root / folder, name, video=video_key(folder, name),
                    identity=_identity(folder, name), source=celeb_source(name) if fake else None)

    for folder, name in sorted(test):
        add(folder, name, "test")
    crossing = 0
    for folder, name in train_videos:
        split = split_of_group(identities_of(folder, name), assignment)
        if split is None:
            crossing += 1
        else:
            add(folder, name, split)
    builder.check_labels({REAL_LABEL: root / REAL_FOLDERS[0] / "frames", FAKE_LABEL: root / SYNTHESIS})
    notes = builder.notes()
    if crossing:
        notes.append(f"{DATASET}: {crossing} training fake(s) mix a train and a val identity and are left out")
    indexes = {DATASET: builder.json()}
    for prefix, name in subsets(fake_folders(root)):
        indexes[name] = {name: {REAL_LABEL: builder.tree[REAL_LABEL],
                                FAKE_LABEL: {split: {video: record for video, record in videos.items()
                                                     if video.startswith(prefix)}
                                             for split, videos in builder.tree[FAKE_LABEL].items()}}}
    return AdapterResult(indexes, notes)


def subsets(method_folders: List[str]) -> List[Tuple[str, str]]:
    """(video-key prefix, JSON name) of every scenario and method."""
    found = []
    for scenario, short in SCENARIOS.items():
        methods = [folder.split("/")[2] for folder in method_folders if folder.split("/")[1] == scenario]
        if methods:
            found.append((f"{scenario}/", f"{DATASET}-{short}"))
            found += [(f"{scenario}/{method}/", f"{DATASET}-{short}-{method}") for method in methods]
    return found
