"""The adapters of GenD's benchmark sets on miniature trees in their official layouts.

Each tree lists one video (in a split file, the metadata or as a raw video file)
that preprocessing left without frames: the adapter reports it, never drops it silently."""
import csv
from pathlib import Path

import pytest

from preprocessing.adapters.common import AdapterError
from preprocessing.leakage import LeakageError
from tests.preprocessing.test_adapters import preprocessed, records, run, videos


def raw_video(folder: Path, name: str):
    """An unprocessed video file (no frames written for it)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.mp4").write_bytes(b"")


def missing_noted(result, name):
    return any("no frames" in note and name in note for note in result.notes)


# --------------------------------------------------------------------------- Celeb-DF++

def make_celebdf_pp(root: Path):
    ids = [f"id{k}" for k in range(12)]
    for identity in ids:
        preprocessed(root / "Celeb-real", f"{identity}_0000")
    preprocessed(root / "YouTube-real", "00000")
    methods = {"FaceSwap": ("Celeb-DF", "SimSwap"), "FaceReenact": ("LIA",), "TalkingFace": ("SadTalker",)}
    for scenario, names in methods.items():
        for method in names:
            for a, b in zip(ids, ids[1:] + ids[:1]):
                preprocessed(root / "Celeb-synthesis" / scenario / method, f"{a}_{b}_0000")
    (root / "List_of_testing_videos.txt").write_text(
        "1 Celeb-real/id0_0000.mp4\n1 YouTube-real/00001.mp4\n"
        "0 Celeb-synthesis/FaceSwap/SimSwap/id0_id1_0000.mp4\n"
        "0 Celeb-synthesis/TalkingFace/SadTalker/id0_id1_0000.mp4\n")


def test_celebdf_pp_official_test_list_per_method_sets_and_missing_video(tmp_path):
    root = tmp_path / "Celeb-DF++"
    make_celebdf_pp(root)
    # Celeb-DF's official test list shares celebrities (and their source videos) with the
    # other videos: the protocol is not identity-disjoint, so it must be accepted explicitly.
    with pytest.raises(LeakageError, match="Celeb-DF\\+\\+/train and Celeb-DF\\+\\+/test share"):
        run("Celeb-DF++", root, tmp_path)
    result, index = run("Celeb-DF++", root, tmp_path, "--allow_overlap", "identity", "source")
    assert any(note.startswith("allowed overlap: Celeb-DF++/train and Celeb-DF++/test") for note in result.notes)
    cdf = index["Celeb-DF++"]
    assert videos(cdf, "Celeb-DF++", "CelebDFpp_fake", "test") == {"FaceSwap/SimSwap/id0_id1_0000",
                                                                   "TalkingFace/SadTalker/id0_id1_0000"}
    assert videos(cdf, "Celeb-DF++", "CelebDFpp_real", "test") == {"id0_0000"}
    assert missing_noted(result, "00001")  # listed for test, never preprocessed
    assert {"Celeb-DF++-FS", "Celeb-DF++-FR", "Celeb-DF++-TF", "Celeb-DF++-FS-Celeb-DF", "Celeb-DF++-FS-SimSwap",
            "Celeb-DF++-FR-LIA", "Celeb-DF++-TF-SadTalker"} <= set(index)
    simswap = index["Celeb-DF++-FS-SimSwap"]["Celeb-DF++-FS-SimSwap"]
    assert set(simswap["CelebDFpp_fake"]["test"]) == {"FaceSwap/SimSwap/id0_id1_0000"}
    assert all(v.startswith("FaceSwap/SimSwap/") for s in simswap["CelebDFpp_fake"].values() for v in s)
    # val carved by identity (id9 is the 10th in natural order); fakes keep their source video
    assert videos(cdf, "Celeb-DF++", "CelebDFpp_real", "val") == {"id9_0000"}
    record = cdf["Celeb-DF++"]["CelebDFpp_fake"]["train"]["FaceReenact/LIA/id2_id3_0000"]
    assert record["identity"] == "id2" and record["source"] == "id2_0000"
    assert len(records(tmp_path, "Celeb-DF++-TF", "test")) == 2


# --------------------------------------------------------------------------- DeepSpeak v1.1 / v2.0

@pytest.mark.parametrize("dataset,engines", [("DeepSpeak-v1.1", ("facefusion", "wav2lip")),
                                             ("DeepSpeak-v2.0", ("latentsync", "memo"))])
def test_deepspeak_versions_per_engine_folders(tmp_path, dataset, engines):
    root = tmp_path / dataset
    people = [f"p{k}" for k in range(10)]
    rows = []
    for person in people:
        preprocessed(root / "train" / "real", f"{person}_r")
        rows.append([f"{person}_r.mp4", person, ""])
        for engine in engines:
            preprocessed(root / "train" / engine, f"{person}_f")
        rows.append([f"{person}_f.mp4", person, f"{person}_r.mp4"])
    preprocessed(root / "test" / "real", "q_r")
    preprocessed(root / "test" / engines[0], "q_f")
    raw_video(root / "test" / engines[1], "q_f")  # exported but not preprocessed
    with open(root / "metadata.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([["video", "identity", "source"], *rows, ["q_r.mp4", "q", ""],
                                      ["q_f.mp4", "q", "q_r.mp4"]])
    result, index = run(dataset, root, tmp_path)
    speak = index[dataset][dataset]
    assert set(speak["DeepSpeak_fake"]["test"]) == {f"{engines[0]}/q_f"}
    assert missing_noted(result, f"{engines[1]}/q_f")
    assert set(speak["DeepSpeak_real"]["val"]) == {"p9_r"}
    assert set(speak["DeepSpeak_fake"]["val"]) == {f"{e}/p9_f" for e in engines}
    assert speak["DeepSpeak_fake"]["train"][f"{engines[0]}/p0_f"]["source"] == "p0_r"
    assert len(records(tmp_path, dataset, "train")) == 9 * (1 + len(engines))


# --------------------------------------------------------------------------- KoDF

def test_kodf_everything_is_test_and_the_adversarial_subset_is_its_own_json(tmp_path):
    root = tmp_path / "KoDF"
    for subject in ("s1", "s2"):
        preprocessed(root / "original_videos" / subject, f"{subject}_clip0")
        for method in ("dfl", "fsgan", "audio_driven"):
            preprocessed(root / "synthesized_videos" / method / subject, f"{subject}_x")
    raw_video(root / "synthesized_videos" / "fo" / "s2", "s2_y")
    preprocessed(root / "adversarial_examples" / "real" / "s1", "a_real")
    preprocessed(root / "adversarial_examples" / "fake" / "s1", "a_fake")
    result, index = run("KoDF", root, tmp_path)
    kodf = index["KoDF"]["KoDF"]
    assert len(kodf["KoDF_fake"]["test"]) == 6 and not kodf["KoDF_fake"]["train"]
    assert kodf["KoDF_real"]["test"]["original_videos/s1/s1_clip0"]["identity"] == "s1"
    assert missing_noted(result, "synthesized_videos/fo/s2/s2_y")
    adv = index["KoDF-adv"]["KoDF-adv"]
    assert set(adv["KoDF_fake"]["test"]) == {"adversarial_examples/fake/s1/a_fake"}
    assert len(records(tmp_path, "KoDF-adv", "test")) == 2


# --------------------------------------------------------------------------- FakeAVCeleb

FAVC_HEADER = "source,target1,target2,method,category,type,race,gender,path,\n"


def make_fakeavceleb(root: Path, people=10):
    lines = [FAVC_HEADER]
    for k in range(people):
        person, donor = f"id{k:05d}", f"id{(k + 1) % people:05d}"
        base = f"FakeAVCeleb/{{}}/African/men/{person}"
        rows = [("-", "-", "real", "A", "RealVideo-RealAudio", f"{k:05d}.mp4"),
                (donor, "-", "rtvc", "B", "RealVideo-FakeAudio", f"{k:05d}_fake.mp4"),
                (donor, "3", "faceswap", "C", "FakeVideo-RealAudio", f"{k:05d}_3_{donor}_faceswap.mp4"),
                (donor, "3", "wav2lip", "D", "FakeVideo-FakeAudio", f"{k:05d}_3_{donor}_wavtolip.mp4")]
        for target1, target2, method, category, kind, filename in rows:
            lines.append(f"{person},{target1},{target2},{method},{category},{kind},African,men,{filename},"
                         f"{base.format(kind)},\n")
            if not (k == 0 and method == "wav2lip"):
                preprocessed(root / kind / "African" / "men" / person, Path(filename).stem)
    (root / "meta_data.csv").write_text("".join(lines))


def test_fakeavceleb_video_track_labels_seeded_identity_split_and_gend_subsets(tmp_path):
    root = tmp_path / "FakeAVCeleb"
    make_fakeavceleb(root)
    result, index = run("FakeAVCeleb", root, tmp_path, "--option", "split_seed=3")
    everything = index["FakeAVCeleb-all"]["FakeAVCeleb-all"]
    assert len(everything["FakeAVCeleb_real"]["test"]) == 10  # RV-FA left out: its video track is real
    assert len(everything["FakeAVCeleb_fake"]["test"]) == 19
    assert missing_noted(result, "FakeVideo-FakeAudio/African/men/id00000/00000_3_id00001_wavtolip")
    fake = everything["FakeAVCeleb_fake"]["test"]["FakeVideo-RealAudio/African/men/id00003/00003_3_id00004_faceswap"]
    assert fake["source"] == "RealVideo-RealAudio/African/men/id00003/00003" and fake["identity"] == "id00003"
    split = index["FakeAVCeleb"]["FakeAVCeleb"]
    where = {}
    for label in ("FakeAVCeleb_real", "FakeAVCeleb_fake"):
        for name, node in split[label].items():
            for video in node:
                where.setdefault(video.split("/")[3], set()).add(name)
    assert all(len(splits) == 1 for splits in where.values())  # identity-disjoint
    assert {s for splits in where.values() for s in splits} == {"train", "val", "test"}
    assert any("face-swap fake(s) show faces of two splits" in note for note in result.notes)
    wl = index["FakeAVCeleb-FV-FA-WL"]["FakeAVCeleb-FV-FA-WL"]
    assert len(wl["FakeAVCeleb_fake"]["test"]) == 9 and len(wl["FakeAVCeleb_real"]["test"]) == 10
    assert not index["FakeAVCeleb-FV-FA-FS"]["FakeAVCeleb-FV-FA-FS"]["FakeAVCeleb_fake"]["test"]
    # same seed, same split; another seed, another one
    def layout(tree):
        return {label: {name: sorted(node) for name, node in splits.items()} for label, splits in tree.items()}

    again = run("FakeAVCeleb", root, tmp_path / "again", "--option", "split_seed=3")[1]["FakeAVCeleb"]
    other = run("FakeAVCeleb", root, tmp_path / "other", "--option", "split_seed=4")[1]["FakeAVCeleb"]
    assert layout(again["FakeAVCeleb"]) == layout(split) != layout(other["FakeAVCeleb"])


def test_fakeavceleb_rejects_a_foreign_metadata_file(tmp_path):
    root = tmp_path / "FakeAVCeleb"
    root.mkdir()
    (root / "meta_data.csv").write_text("video,label\na.mp4,1\n")
    with pytest.raises(AdapterError, match="source,target1,target2,method,category,type"):
        run("FakeAVCeleb", root, tmp_path)


# --------------------------------------------------------------------------- DFDM

def test_dfdm_uses_gends_four_models_and_celeb_df_reals(tmp_path):
    celeb = tmp_path / "Celeb-DF-v2"
    for video in ("id0_0000", "id1_0000"):
        preprocessed(celeb / "Celeb-real", video)
    root = tmp_path / "DFDM"
    for model in ("dfaker", "dfl", "iae", "lightweight", "faceswap"):
        preprocessed(root / model, "id0_id1_0000")
    raw_video(root / "iae", "id1_id0_0000")
    result, index = run("DFDM", root, tmp_path)
    dfdm = index["DFDM"]["DFDM"]
    assert set(dfdm["DFDM_fake"]["test"]) == {f"{m}/id0_id1_0000" for m in ("dfaker", "dfl", "iae", "lightweight")}
    assert set(dfdm["DFDM_real"]["test"]) == {"id0_0000", "id1_0000"}
    assert dfdm["DFDM_fake"]["test"]["dfl/id0_id1_0000"]["source"] == "id0_0000"
    assert missing_noted(result, "iae/id1_id0_0000")
    _, with_faceswap = run("DFDM", root, tmp_path, "--option", "models=dfaker,faceswap")
    assert set(with_faceswap["DFDM"]["DFDM"]["DFDM_fake"]["test"]) == {"dfaker/id0_id1_0000", "faceswap/id0_id1_0000"}
    with pytest.raises(AdapterError, match="real_root"):
        run("DFDM", root, tmp_path, "--option", f"real_root={tmp_path / 'nowhere'}")


# --------------------------------------------------------------------------- PolyGlotFake

def test_polyglotfake_test_set(tmp_path):
    root = tmp_path / "PolyGlotFake"
    for lang in ("en", "fr"):
        preprocessed(root / "real" / lang, f"{lang}_001")
    preprocessed(root / "fake" / "en2fr_Wav2Lip", "en_001")
    preprocessed(root / "fake" / "en2fr" / "video_retalking", "en_001")
    raw_video(root / "fake" / "fr2en_Wav2Lip", "fr_001")
    result, index = run("PolyGlotFake", root, tmp_path)
    poly = index["PolyGlotFake"]["PolyGlotFake"]
    assert set(poly["PolyGlotFake_fake"]["test"]) == {"fake/en2fr_Wav2Lip/en_001", "fake/en2fr/video_retalking/en_001"}
    assert set(poly["PolyGlotFake_real"]["test"]) == {"real/en/en_001", "real/fr/fr_001"}
    assert missing_noted(result, "fake/fr2en_Wav2Lip/fr_001")
    assert len(records(tmp_path, "PolyGlotFake", "test")) == 4


# --------------------------------------------------------------------------- IDForge v1

def test_idforge_official_split_folders(tmp_path):
    root = tmp_path / "IDForge-v1"
    for split in ("train", "val", "test"):
        preprocessed(root / split / "real", f"{split}_r")
        for name in ("face_tts_roop", "face_tts_simswap", "face_tts_infoswap"):
            preprocessed(root / split / name, f"{split}_f")
    raw_video(root / "test" / "face_tts_roop", "test_g")
    result, index = run("IDForge-v1", root, tmp_path)
    forge = index["IDForge-v1"]["IDForge-v1"]
    assert set(forge["IDForge_real"]["val"]) == {"val_r"}
    assert set(forge["IDForge_fake"]["test"]) == {f"{n}/test_f" for n in ("face_tts_roop", "face_tts_simswap",
                                                                           "face_tts_infoswap")}
    assert missing_noted(result, "face_tts_roop/test_g")
    assert len(records(tmp_path, "IDForge-v1", "train")) == 4


# --------------------------------------------------------------------------- DF40

def test_df40_per_method_jsons_with_the_domains_reals(tmp_path):
    from tests.preprocessing.test_adapters import make_ffpp

    ff_root = tmp_path / "FaceForensics++"
    make_ffpp(ff_root)
    run("FaceForensics++", ff_root, tmp_path)
    root = tmp_path / "DF40"
    for method in ("simswap", "fomm"):
        for video in ("000_001", "001_000"):
            preprocessed(root / "train" / method / "ff", video)
        preprocessed(root / "test" / method / "ff", "006_007")
    raw_video(root / "test" / "simswap" / "ff", "007_006")
    preprocessed(root / "test" / "VQGAN" / "ff", "000")  # an image method: not indexed
    result, index = run("DF40", root, tmp_path)
    assert {"simswap_ff", "fomm_ff", "FSAll_ff", "FRAll_ff"} <= set(index) and "VQGAN_ff" not in index
    simswap = index["simswap_ff"]["simswap_ff"]
    assert set(simswap) == {"simswap_Real", "simswap_Fake"}
    assert set(simswap["simswap_Fake"]["test"]) == {"006_007"}
    assert set(simswap["simswap_Real"]["test"]) == {"006", "007"}  # FF++'s official test reals
    assert simswap["simswap_Real"]["train"]["000"]["label"] == "simswap_Real"
    assert missing_noted(result, "007_006")
    assert any("VQGAN" in note for note in result.notes)
    assert set(index["FSAll_ff"]["FSAll_ff"]["FSAll_Fake"]["train"]) == {"simswap/000_001", "simswap/001_000"}
    assert len(records(tmp_path, "fomm_ff", "test")) == 3


def test_df40_needs_the_domain_json(tmp_path):
    root = tmp_path / "DF40"
    preprocessed(root / "test" / "simswap" / "cdf", "id0_id1_0000")
    with pytest.raises(AdapterError, match="json/Celeb-DF-v2.json"):
        run("DF40", root, tmp_path)


def test_df40_fake_in_test_made_from_a_training_real_is_refused(tmp_path):
    from tests.preprocessing.test_adapters import make_ffpp

    make_ffpp(tmp_path / "FaceForensics++")
    run("FaceForensics++", tmp_path / "FaceForensics++", tmp_path)
    root = tmp_path / "DF40"
    preprocessed(root / "test" / "simswap" / "ff", "000_001")  # 000 is an FF++ training real
    with pytest.raises(LeakageError, match="simswap_ff/train and simswap_ff/test"):
        run("DF40", root, tmp_path)
    result, _ = run("DF40", root, tmp_path, "--allow_overlap", "identity", "source")
    assert any(note.startswith("allowed overlap") for note in result.notes)
