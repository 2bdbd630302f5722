"""Every dataset adapter on a miniature copy of its official layout and split files."""
import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from preprocessing.adapters.common import AdapterError
from preprocessing.rearrange import main as rearrange_main
from training.data.catalog import build_records, load_label_dict

REPO = Path(__file__).resolve().parents[2]
LABELS = load_label_dict(REPO / "configs" / "_base_" / "datasets.yaml")
TINY = np.zeros((4, 4, 3), np.uint8)


def preprocessed(video_dir: Path, name: str, indices=(0, 31), landmarks=True, masks=False):
    """What preprocessing writes for one video (tiny placeholder files)."""
    for index in indices:
        for kind, write in (("frames", True), ("landmarks", landmarks), ("masks", masks)):
            if not write:
                continue
            path = video_dir / kind / name / f"{index:03d}.{'npy' if kind == 'landmarks' else 'png'}"
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "landmarks":
                np.save(path, np.zeros((68, 2), np.float32))
            else:
                cv2.imwrite(str(path), TINY if kind == "frames" else TINY[..., 0])


def run(dataset, root, data_root, *extra):
    result = rearrange_main(["--dataset", dataset, "--source_dir", str(root), "--data_root", str(data_root),
                             *extra])
    return result, {name: json.loads((data_root / "json" / f"{name}.json").read_text())
                    for name in result.indexes}


def videos(index, dataset, label, split, compression=None):
    node = index[dataset][label][split]
    return set(node[compression] if compression else node)


def records(data_root, dataset, split, compression="c23"):
    """The JSON loads through the training catalog (schema and label names)."""
    return build_records(dataset, split, data_root=data_root, label_dict=LABELS, compression=compression)


# --------------------------------------------------------------------------- FaceForensics++ family

FF_PAIRS = {"train": [["000", "001"], ["002", "003"]], "val": [["004", "005"]], "test": [["006", "007"]]}
FF_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def make_ffpp(root: Path, methods=FF_METHODS, skip=()):
    (root / "splits").mkdir(parents=True)
    for split, pairs in FF_PAIRS.items():
        (root / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    for a, b in (pair for pairs in FF_PAIRS.values() for pair in pairs):
        for video in (a, b):
            preprocessed(root / "original_sequences" / "youtube" / "c23", video)
        for method in methods:
            for video in (f"{a}_{b}", f"{b}_{a}"):
                if (method, video) not in skip:
                    preprocessed(root / "manipulated_sequences" / method / "c23", video,
                                 masks=method != "FaceShifter")


def test_faceforensics(tmp_path):
    data_root = tmp_path / "datasets"
    root = data_root / "FaceForensics++"
    make_ffpp(root, skip={("NeuralTextures", "003_002")})
    result, index = run("FaceForensics++", root, data_root)
    assert set(index) == {"FaceForensics++", "FF-DF", "FF-F2F", "FF-FS", "FF-NT"}
    ff = index["FaceForensics++"]
    assert videos(ff, "FaceForensics++", "FF-real", "train", "c23") == {"000", "001", "002", "003"}
    assert videos(ff, "FaceForensics++", "FF-DF", "val", "c23") == {"004_005", "005_004"}
    assert videos(ff, "FaceForensics++", "FF-NT", "train", "c23") == {"000_001", "001_000", "002_003"}
    assert any("003_002" in note for note in result.notes)
    record = ff["FaceForensics++"]["FF-DF"]["train"]["c23"]["000_001"]
    assert record["label"] == "FF-DF" and record["identity"] == "000"
    assert record["frames"] == ["FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_001/000.png",
                                "FaceForensics++/manipulated_sequences/Deepfakes/c23/frames/000_001/031.png"]
    assert record["masks"][0].endswith("Deepfakes/c23/masks/000_001/000.png")
    assert record["landmarks"][1].endswith("Deepfakes/c23/landmarks/000_001/031.npy")
    assert set(index["FF-DF"]["FF-DF"]) == {"FF-real", "FF-DF"}
    test = records(data_root, "FaceForensics++", "test")
    assert len(test) == 2 + 4 * 2 and all(r.compression == "c23" for r in test)
    assert {r.label for r in test if r.label_name == "FF-real"} == {0}
    assert len(records(data_root, "FF-F2F", "train")) == 4 + 4


def test_faceforensics_errors_name_the_missing_file(tmp_path):
    root = tmp_path / "FaceForensics++"
    make_ffpp(root)
    (root / "splits" / "val.json").unlink()
    with pytest.raises(AdapterError, match=r"val\.json.*ondyari/FaceForensics"):
        run("FaceForensics++", root, tmp_path)
    (root / "splits" / "val.json").write_text(json.dumps(FF_PAIRS["val"]))
    with pytest.raises(AdapterError, match="compression c40"):
        run("FaceForensics++", root, tmp_path, "--compression", "c40")


def test_paths_outside_the_data_root_are_absolute(tmp_path):
    root = tmp_path / "elsewhere" / "FaceForensics++"
    make_ffpp(root)
    _, index = run("FaceForensics++", root, tmp_path / "datasets")
    frame = index["FF-DF"]["FF-DF"]["FF-real"]["test"]["c23"]["006"]["frames"][0]
    assert Path(frame).is_absolute() and Path(frame).is_file()


def test_faceshifter(tmp_path):
    root = tmp_path / "FaceForensics++"
    make_ffpp(root, methods=("FaceShifter",))
    _, index = run("FaceShifter", root, tmp_path)
    assert videos(index["FaceShifter"], "FaceShifter", "FF-FH", "test", "c23") == {"006_007", "007_006"}
    assert "masks" not in index["FaceShifter"]["FaceShifter"]["FF-FH"]["test"]["c23"]["006_007"]
    assert len(records(tmp_path, "FaceShifter", "val")) == 4


def test_deepfakedetection_splits_by_actor(tmp_path):
    root = tmp_path / "FaceForensics++"
    actors = [f"{n:02d}" for n in range(1, 15)]
    for actor in actors:
        preprocessed(root / "original_sequences" / "actors" / "c23", f"{actor}__talking", masks=False)
    fakes = [f"{a}_{b}__talking__ABCD{k}" for k, (a, b) in
             enumerate(zip(actors, actors[1:] + actors[:1]))] + ["06_13__hug__X1", "07_14__hug__X2"]
    for fake in fakes:
        preprocessed(root / "manipulated_sequences" / "DeepFakeDetection" / "c23", fake, masks=True)
    result, index = run("DeepFakeDetection", root, tmp_path)
    dfd = index["DeepFakeDetection"]["DeepFakeDetection"]
    split_of_actor = {}
    for label in ("DFD_real", "DFD_fake"):
        for split in ("train", "val", "test"):
            for video in dfd[label][split]["c23"]:
                for actor in video.split("__")[0].split("_"):
                    assert split_of_actor.setdefault(actor, split) == split, f"actor {actor} leaks"
    # actors 6, 13 -> val; 7, 14 -> test (every 7: 6th val, 7th test)
    assert set(dfd["DFD_real"]["val"]["c23"]) == {"06__talking", "13__talking"}
    assert set(dfd["DFD_fake"]["test"]["c23"]) == {"07_14__hug__X2"}
    assert any("mix actors" in note for note in result.notes)
    everything = index["DeepFakeDetection-all"]["DeepFakeDetection-all"]
    assert len(everything["DFD_fake"]["test"]["c23"]) == len(fakes) and not everything["DFD_fake"]["train"]["c23"]
    assert records(tmp_path, "DeepFakeDetection", "val")[0].identity in {"06", "13"}


# --------------------------------------------------------------------------- other datasets

def test_celebdf_excludes_test_videos_from_train_and_carves_val_by_identity(tmp_path):
    root = tmp_path / "Celeb-DF-v2"
    ids = [f"id{k}" for k in range(12)]
    for identity in ids:
        preprocessed(root / "Celeb-real", f"{identity}_0000")
    for youtube in ("00000", "00001"):
        preprocessed(root / "YouTube-real", youtube)
    swaps = [f"{a}_{b}_0000" for a, b in zip(ids, ids[1:] + ids[:1])] + ["id9_id10_0001"]
    for fake in swaps:
        preprocessed(root / "Celeb-synthesis", fake)
    (root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n1 YouTube-real/00001.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n")
    result, index = run("Celeb-DF-v2", root, tmp_path)
    cdf = index["Celeb-DF-v2"]
    assert videos(cdf, "Celeb-DF-v2", "CelebDFv2_real", "test") == {"id0_0000", "00001"}
    assert videos(cdf, "Celeb-DF-v2", "CelebDFv2_fake", "test") == {"id0_id1_0000"}
    train_and_val = {v for split in ("train", "val") for label in ("CelebDFv2_real", "CelebDFv2_fake")
                     for v in cdf["Celeb-DF-v2"][label][split]}
    assert not train_and_val & {"id0_0000", "00001", "id0_id1_0000"}  # DeepfakeBench's leak
    # natural order id0, id1, ..., id9, id10, id11, youtube/00000: the 10th (id9) is val
    assert videos(cdf, "Celeb-DF-v2", "CelebDFv2_real", "val") == {"id9_0000"}
    assert videos(cdf, "Celeb-DF-v2", "CelebDFv2_fake", "val") == set()
    assert {"id8_id9_0000", "id9_id10_0000", "id9_id10_0001"}.isdisjoint(train_and_val)
    assert any("mix a train and a val identity" in note for note in result.notes)
    assert cdf["Celeb-DF-v2"]["CelebDFv2_fake"]["train"]["id1_id2_0000"]["identity"] == "id1"
    assert len(records(tmp_path, "Celeb-DF-v2", "test")) == 3


def test_celebdf_v1_needs_its_test_list(tmp_path):
    root = tmp_path / "Celeb-DF-v1"
    preprocessed(root / "Celeb-real", "id0_0000")
    with pytest.raises(AdapterError, match="List_of_testing_videos.txt"):
        run("Celeb-DF-v1", root, tmp_path)


def test_dfdc(tmp_path):
    root = tmp_path / "DFDC"
    for video in ("aaa", "bbb"):
        preprocessed(root / "test", video)
    with open(root / "test" / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["filename", "label"], ["aaa.mp4", 0], ["bbb.mp4", 1]])
    for number in (0, 9):
        part = root / "train" / f"dfdc_train_part_{number}"
        real, fake = f"real{number}", f"fake{number}"
        preprocessed(part, real)
        preprocessed(part, fake)
        part.joinpath("metadata.json").write_text(json.dumps({
            f"{real}.mp4": {"label": "REAL", "split": "train"},
            f"{fake}.mp4": {"label": "FAKE", "split": "train", "original": f"{real}.mp4"}}))
    _, index = run("DFDC", root, tmp_path)
    dfdc = index["DFDC"]["DFDC"]
    assert set(dfdc["DFDC_Fake"]["test"]) == {"bbb"} and set(dfdc["DFDC_Real"]["test"]) == {"aaa"}
    assert set(dfdc["DFDC_Fake"]["train"]) == {"fake0"} and set(dfdc["DFDC_Fake"]["val"]) == {"fake9"}
    assert dfdc["DFDC_Fake"]["val"]["fake9"]["identity"] == "real9"
    assert len(records(tmp_path, "DFDC", "val")) == 2


def test_dfdcp(tmp_path):
    root = tmp_path / "DFDCP"
    entries = {}
    for subject in range(11):
        for folder, label in (("original_videos", "real"), ("method_A", "fake"), ("method_B", "fake")):
            key = f"{folder}/{1000 + subject}/{folder[-1]}{subject}/clip.mp4"
            entries[key] = {"label": label, "set": "test" if subject == 0 else "train"}
            preprocessed(root / Path(key).parent, "clip")
    (root / "dataset.json").write_text(json.dumps(entries))
    _, index = run("DFDCP", root, tmp_path)
    dfdcp = index["DFDCP"]["DFDCP"]
    assert set(dfdcp["DFDCP_FakeB"]["test"]) == {"method_B/1000/B0/clip"}
    # train subjects 1001..1010 in natural order: the 10th (1010) is val
    assert set(dfdcp["DFDCP_Real"]["val"]) == {"original_videos/1010/s10/clip"}
    assert dfdcp["DFDCP_FakeA"]["val"]["method_A/1010/A10/clip"]["identity"] == "1010"
    assert len(records(tmp_path, "DFDCP", "train")) == 3 * 9


def test_uadfv_is_a_test_set_only(tmp_path):
    root = tmp_path / "UADFV"
    for number in ("0000", "0001"):
        preprocessed(root / "real", number)
        preprocessed(root / "fake", f"{number}_fake")
    _, index = run("UADFV", root, tmp_path)
    uadfv = index["UADFV"]["UADFV"]
    assert set(uadfv["UADFV_Fake"]["test"]) == {"0000_fake", "0001_fake"} and not uadfv["UADFV_Fake"]["train"]
    assert uadfv["UADFV_Fake"]["test"]["0001_fake"]["identity"] == "0001"
    assert len(records(tmp_path, "UADFV", "test")) == 4


def test_deeperforensics(tmp_path):
    root = tmp_path / "DeeperForensics-1.0"
    listing = {"train": ["000_M101.mp4", "001_M101.mp4"], "val": ["002_W102.mp4"], "test": ["003_M103.mp4"]}
    (root / "lists" / "splits").mkdir(parents=True)
    for split, names in listing.items():
        (root / "lists" / "splits" / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            preprocessed(root / "manipulated_videos" / "end_to_end", Path(name).stem)
    for actor in ("M101", "W102", "M103", "M104"):
        preprocessed(root / "source_videos" / actor / "BlendShape" / "camera_front", f"{actor}_front")
    _, index = run("DeeperForensics-1.0", root, tmp_path)
    df = index["DeeperForensics-1.0"]["DeeperForensics-1.0"]
    assert set(df["DF_fake"]["train"]) == {"000_M101", "001_M101"}
    assert set(df["DF_real"]["test"]) == {"M103/BlendShape/camera_front/M103_front"}
    assert set(df["DF_real"]["val"]) == {"W102/BlendShape/camera_front/W102_front"}
    assert set(df["DF_real"]["train"]) == {f"{a}/BlendShape/camera_front/{a}_front" for a in ("M101", "M104")}
    assert len(records(tmp_path, "DeeperForensics-1.0", "test")) == 2
    with pytest.raises(AdapterError, match="reenact_postprocess"):
        run("DeeperForensics-1.0", root, tmp_path, "--perturbation", "reenact_postprocess")


def test_ffiw(tmp_path):
    root = tmp_path / "FFIW10K-v1-release"
    for side in ("source", "target"):
        for split in ("train", "val"):
            preprocessed(root / side / split, f"{split}_clip")
    _, index = run("FFIW-10K", root, tmp_path)
    ffiw = index["FFIW-10K"]["FFIW-10K"]
    assert set(ffiw["FFIW_fake"]["val"]) == {"val_clip"} and not ffiw["FFIW_real"]["test"]
    assert len(records(tmp_path, "FFIW-10K", "train")) == 2


def test_deepspeak(tmp_path):
    root = tmp_path / "DeepSpeak"
    people = [f"p{k}" for k in range(10)]
    for person in people:
        preprocessed(root / "train" / "real", f"{person}_real")
        preprocessed(root / "train" / "fake", f"{person}_fake")
    preprocessed(root / "test" / "fake", "q_fake")
    with open(root / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["video", "identity"])
        for person in people:
            writer.writerows([[f"{person}_real.mp4", person], [f"{person}_fake.mp4", person]])
    _, index = run("DeepSpeak-v1", root, tmp_path)
    speak = index["DeepSpeak-v1"]["DeepSpeak-v1"]
    assert set(speak["DeepSpeak_real"]["val"]) == {"p9_real"} and set(speak["DeepSpeak_fake"]["val"]) == {"p9_fake"}
    assert set(speak["DeepSpeak_fake"]["test"]) == {"q_fake"}
    assert len(records(tmp_path, "DeepSpeak-v1", "train")) == 18


def test_a_label_without_preprocessed_videos_is_an_error(tmp_path):
    root = tmp_path / "UADFV"
    preprocessed(root / "real", "0000")
    (root / "fake" / "frames").mkdir(parents=True)
    with pytest.raises(AdapterError, match=r"UADFV_Fake.*fake[/\\]frames.*preprocessing.preprocess"):
        run("UADFV", root, tmp_path)


def test_unknown_dataset_suggests_the_closest_name(tmp_path):
    with pytest.raises(KeyError, match="Did you mean 'Celeb-DF-v2'"):
        run("Celeb-DF-V2", tmp_path, tmp_path)
