"""Datasets: class folders, list files, npz volumes, multi-view, unreadable files, splits."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vidzoo.data import (
    ExcludeUnreadable,
    FrameSampler,
    Normalize,
    NpzVolumeDataset,
    SubstituteUnreadable,
    Unreadable,
    UnreadableVideoError,
    VideoDecodeError,
    VideoFolder,
    VideoListDataset,
    VideoNotFoundError,
    collate_readable,
    eval_transforms,
    split_indices,
    train_val_split,
    write_video,
)

T, S = 12, 32


def flat_video(level: int) -> np.ndarray:
    return np.full((T, S, S, 3), level, np.uint8)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    """root/cat: 2 mp4 (levels 40, 60); root/dog: 1 mp4 (level 200) + 1 png frame folder (level 220)."""
    root = tmp_path_factory.mktemp("vf")
    write_video(root / "cat" / "c1.mp4", flat_video(40))
    write_video(root / "cat" / "c2.mp4", flat_video(60))
    write_video(root / "dog" / "d1.mp4", flat_video(200))
    frames = root / "dog" / "d2_frames"
    frames.mkdir()
    for i in range(T):
        Image.fromarray(flat_video(220)[i]).save(frames / f"{i:05d}.png")
    (root / "dog" / "readme.txt").write_text("ignored")
    return root


@pytest.fixture
def root_with_corrupt(tmp_path):
    write_video(tmp_path / "cat" / "a_good.mp4", flat_video(40))
    (tmp_path / "cat" / "b_broken.mp4").write_bytes(b"\x00\x01 definitely not a video" * 50)
    write_video(tmp_path / "dog" / "c_good.mp4", flat_video(200))
    return tmp_path


def test_video_folder_layout(video_root):
    ds = VideoFolder(video_root, FrameSampler("uniform", num_frames=4))
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert [(p.rsplit("/", 1)[-1], y) for p, y in ds.samples] == [
        ("c1.mp4", 0), ("c2.mp4", 0), ("d1.mp4", 1), ("d2_frames", 1)]
    assert len(ds) == 4 and ds.targets == [0, 0, 1, 1]
    for i, level in enumerate([40, 60, 200, 220]):
        clip, label = ds[i]
        assert clip.dtype == torch.float32 and clip.shape == (3, 4, S, S)
        assert clip.mean().item() == pytest.approx(level / 255, abs=0.02)  # float in 0..1 without a transform
        assert label == ds.targets[i]


def test_video_folder_with_transform_and_loader(video_root):
    tf = eval_transforms(16, mean=(0.5,) * 3, std=(0.5,) * 3)
    ds = VideoFolder(video_root, FrameSampler("dense", num_frames=4, stride=2), tf, train=True,
                     generator=torch.Generator().manual_seed(0))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3, 4, 16, 16) and y.tolist() == [0, 0, 1, 1]
    assert x[0].mean().item() == pytest.approx(40 / 255 * 2 - 1, abs=0.03)


def test_multi_view_stacking(video_root):
    ds = VideoFolder(video_root, FrameSampler("dense", num_frames=4, stride=2, num_clips=2),
                     eval_transforms(S, mean=(0,) * 3, std=(1,) * 3, num_crops=3))
    views, label = ds[0]
    assert views.shape == (6, 3, 4, S, S) and label == 0  # 2 clips x 3 crops
    clips_only = VideoFolder(video_root, FrameSampler("uniform", num_frames=4, num_clips=3))
    assert clips_only[2][0].shape == (3, 3, 4, S, S)
    # training draws a single clip even when num_clips > 1
    train = VideoFolder(video_root, FrameSampler("uniform", num_frames=4, num_clips=3), train=True)
    assert train[2][0].shape == (3, 4, S, S)


def test_an_unreadable_sample_raises_and_is_never_substituted(root_with_corrupt):
    """A library user's DataLoader over a dataset gets the error, never another video in its place."""
    ds = VideoFolder(root_with_corrupt, FrameSampler("uniform", num_frames=4))
    with pytest.raises(VideoDecodeError, match="b_broken.mp4") as e:
        ds[1]
    assert isinstance(e.value, UnreadableVideoError) and e.value.path.endswith("b_broken.mp4")
    assert ds[0][1] == 0 and ds[2][1] == 1
    with pytest.raises(UnreadableVideoError, match="b_broken.mp4"):
        list(DataLoader(ds, batch_size=3))
    with pytest.raises(ValueError, match="SubstituteUnreadable.*ExcludeUnreadable"):
        VideoFolder(root_with_corrupt, on_error="skip")


def test_any_os_error_while_reading_is_an_unreadable_video(root_with_corrupt):
    class Denied(VideoFolder):
        def read_clips(self, index):
            raise PermissionError(13, "Permission denied", str(self.samples[index][0]))

    with pytest.raises(UnreadableVideoError, match="a_good.mp4.*Permission denied"):
        Denied(root_with_corrupt)[0]


def test_training_substitutes_and_evaluation_excludes(root_with_corrupt):
    ds = VideoFolder(root_with_corrupt, FrameSampler("uniform", num_frames=4))
    train = SubstituteUnreadable(ds)
    clip, label, skipped = train[1]
    assert label == 1 and clip.mean().item() == pytest.approx(200 / 255, abs=0.02)  # the next readable one
    assert skipped.startswith(str(root_with_corrupt / "cat" / "b_broken.mp4") + "\t") and train[0][2] == ""
    assert train[1][2] == skipped  # reported every time it is drawn (not decoded again)
    evaluation = ExcludeUnreadable(ds)
    bad = evaluation[1]
    assert isinstance(bad, Unreadable) and bad.index == 1 and bad.source.endswith("b_broken.mp4") and bad.reason
    x, y, idx, unreadable = collate_readable([evaluation[i] for i in range(3)])
    assert x.shape[0] == 2 and y.tolist() == [0, 1] and idx.tolist() == [0, 2] and unreadable == [bad]
    with pytest.raises(VideoDecodeError):
        ExcludeUnreadable(ds, on_error="raise")[1]


def test_all_unreadable_raises(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.mp4").write_bytes(b"junk")
    ds = VideoFolder(tmp_path, FrameSampler())
    with pytest.raises(RuntimeError, match="no readable sample"):
        SubstituteUnreadable(ds)[0]


def test_video_folder_errors(tmp_path):
    missing = tmp_path / "no_such_root"
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        VideoFolder(missing)
    with pytest.raises(ValueError, match="no class folders"):
        VideoFolder(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"no videos in .*\.mp4"):
        VideoFolder(tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        VideoFolder(tmp_path, on_error="ignore")


def test_video_list_csv_with_header_and_names(video_root, tmp_path):
    lst = video_root / "list.csv"  # relative paths resolve against the list file's folder
    lst.write_text("path,label\ncat/c1.mp4,cat\n\n# comment\ndog/d1.mp4,dog\ndog/d2_frames,dog\n")
    ds = VideoListDataset(lst, sampler=FrameSampler("uniform", num_frames=4))
    assert ds.classes == ["cat", "dog"] and ds.targets == [0, 1, 1]
    assert ds[1][0].mean().item() == pytest.approx(200 / 255, abs=0.02)


def test_video_list_tsv_ints_root_and_space(video_root, tmp_path):
    tsv = tmp_path / "list.tsv"
    tsv.write_text(f"cat/c2.mp4\t0\n{video_root / 'dog' / 'd1.mp4'}\t3\n")
    ds = VideoListDataset(tsv, root=video_root, sampler=FrameSampler("uniform", num_frames=2))
    assert ds.targets == [0, 3] and ds.classes == ["0", "1", "2", "3"]
    assert ds[0][0].mean().item() == pytest.approx(60 / 255, abs=0.02)
    spaced = tmp_path / "list.txt"  # Kinetics/SSv2 style: "path label"
    spaced.write_text("cat/c1.mp4 1\ndog/d1.mp4 0\n")
    assert VideoListDataset(spaced, root=video_root, classes=["x", "y"]).targets == [1, 0]


def test_video_list_errors(video_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        VideoListDataset(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("cat/c1.mp4,cat\nlonely_line_without_label\n")
    with pytest.raises(ValueError, match=r"bad.csv:2"):
        VideoListDataset(bad)
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("cat/c1.mp4,cat\ndog/d1.mp4,bird\n")
    with pytest.raises(ValueError, match=r"unknown.csv:2: unknown class 'bird'"):
        VideoListDataset(unknown, classes=["cat", "dog"])
    empty = tmp_path / "empty.csv"
    empty.write_text("path,label\n")
    with pytest.raises(ValueError, match="no samples"):
        VideoListDataset(empty)
    # a listed file that does not exist is named when it is read (a FileNotFoundError as well)
    gone = tmp_path / "gone.csv"
    gone.write_text(f"{video_root}/cat/ghost.mp4,0\n{video_root}/cat/c1.mp4,0\n")
    ds = VideoListDataset(gone, sampler=FrameSampler(num_frames=2))
    assert ds[1][0].shape == (3, 2, S, S)
    with pytest.raises(VideoNotFoundError, match="ghost.mp4") as e:
        ds[0]
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, UnreadableVideoError)


@pytest.fixture
def npz_file(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in [("train", 6), ("val", 3), ("test", 4)]:
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 8, 12, 12), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (n, 1))
    arrays["train_labels"][:3] = [[0], [1], [2]]
    path = tmp_path / "organ3d.npz"
    np.savez(path, **arrays)
    return path, arrays


def test_npz_volume_dataset(npz_file):
    path, arrays = npz_file
    ds = NpzVolumeDataset(path, split="train")
    assert len(ds) == 6 and ds.classes == ["0", "1", "2"] and ds.train
    x, y = ds[2]
    assert x.shape == (1, 8, 12, 12) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.from_numpy(arrays["train_images"][2]).float() / 255)
    assert y == 2 and ds.targets == arrays["train_labels"][:, 0].tolist()
    test = NpzVolumeDataset(path, split="test", transform=Normalize([0.5], [0.5]),
                            sampler=FrameSampler("uniform", num_frames=4))
    x, _ = test[0]
    assert x.shape == (1, 4, 12, 12) and not test.train
    expected = torch.from_numpy(arrays["test_images"][0][[1, 3, 5, 7]]).float() / 255 * 2 - 1
    assert torch.allclose(x[0], expected, atol=1e-6)


def test_npz_float_images_and_flat_labels(tmp_path):
    path = tmp_path / "f.npz"
    imgs = np.random.default_rng(0).random((2, 4, 6, 6)).astype(np.float32)
    np.savez(path, val_images=imgs, val_labels=np.array([1, 0]))
    ds = NpzVolumeDataset(path, split="val")
    assert torch.allclose(ds[0][0][0], torch.from_numpy(imgs[0])) and ds.targets == [1, 0]


def test_npz_errors(tmp_path, npz_file):
    path, arrays = npz_file
    partial = tmp_path / "partial.npz"
    np.savez(partial, val_labels=arrays["val_labels"])
    with pytest.raises(ValueError, match=r"partial.npz.*lacks keys \['val_images'\].*expected"):
        NpzVolumeDataset(partial, split="val")
    bad_shape = tmp_path / "flat.npz"
    np.savez(bad_shape, train_images=np.zeros((2, 8, 8), np.uint8), train_labels=np.zeros(2))
    with pytest.raises(ValueError, match=r"flat.npz.*\(N, D, H, W\)"):
        NpzVolumeDataset(bad_shape)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, train_images=np.zeros((2, 4, 8, 8), np.uint8), train_labels=np.zeros(3))
    with pytest.raises(ValueError, match="N = 2"):
        NpzVolumeDataset(mismatch)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="garbage.npz"):
        NpzVolumeDataset(garbage)
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        NpzVolumeDataset(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="split"):
        NpzVolumeDataset(path, split="dev")


@pytest.mark.parametrize("labels,names,match", [
    (np.array([0, -1]), None, r"train_labels\[1\] is -1; labels must be class indices >= 0"),
    (np.array([0.0, 1.5]), None, r"train_labels\[1\] is 1.5; labels must be whole class indices"),
    (np.array([0.0, np.nan]), None, r"train_labels\[1\] is nan"),
    (np.array([[0], [999_999_999]]), None,
     r"train_labels\[1\] is 999999999; .* below 1000000 \(vidzoo._validation.MAX_CLASSES\)"),
    (np.array([0, 3]), ["a", "b", "c"], r"train_labels\[1\] is 3; .* below 3, the number of classes \(a, b, c\)"),
    (np.array([True, False]), None, r"train_labels must hold integer class indices, got dtype bool"),
    (np.array(["0", "1"]), None, r"integer class indices, got dtype <U1"),
])
def test_npz_labels_are_class_indices(tmp_path, labels, names, match):
    """Labels are whole numbers in [0, classes): a negative one is refused when the file opens (not mid-training),
    a float is not truncated, one huge label does not make a billion class names."""
    path = tmp_path / "l.npz"
    np.savez(path, train_images=np.zeros((2, 2, 4, 4), np.uint8), train_labels=labels)
    with pytest.raises(ValueError, match=match):
        NpzVolumeDataset(path, label_names=names)


def test_npz_whole_float_labels_are_kept(tmp_path):
    path = tmp_path / "f.npz"
    np.savez(path, train_images=np.zeros((3, 2, 4, 4), np.uint8), train_labels=np.array([[0.0], [2.0], [1.0]]))
    ds = NpzVolumeDataset(path)
    assert ds.targets == [0, 2, 1] and ds.classes == ["0", "1", "2"]


def _npz_declaring(path, shape, dtype=np.uint8) -> None:
    """An npz whose train_images header declares ``shape`` but holds a few bytes (a zip bomb's effect without its
    cost: nothing past the header can be read)."""
    import io
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                                  "shape": shape})
    labels = io.BytesIO()
    np.save(labels, np.zeros(shape[0], np.int64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("train_images.npy", header.getvalue() + b"\x00" * 64)
        z.writestr("train_labels.npy", labels.getvalue())


def test_npz_declared_size_is_bounded_before_reading(tmp_path, monkeypatch):
    """An npz declaring 1.6 GB of volumes is refused from its headers (before a byte of them is decompressed),
    against a documented limit that max_bytes= or VIDZOO_NPZ_MAX_BYTES raises."""
    from vidzoo.data.datasets import NPZ_MAX_BYTES
    bomb = tmp_path / "bomb.npz"
    _npz_declaring(bomb, (6250, 64, 64, 64))  # 1.6 GB of uint8
    assert bomb.stat().st_size < 10_000
    with pytest.raises(ValueError, match=r"bomb.npz' declares arrays of 1\.53 GiB .*more than the 1\.00 GiB limit"):
        NpzVolumeDataset(bomb)
    assert NPZ_MAX_BYTES == 2 ** 30
    small = tmp_path / "small.npz"
    np.savez_compressed(small, train_images=np.zeros((4, 8, 16, 16), np.uint8), train_labels=np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="VIDZOO_NPZ_MAX_BYTES"):
        NpzVolumeDataset(small, max_bytes=4096)
    monkeypatch.setenv("VIDZOO_NPZ_MAX_BYTES", "4096")
    with pytest.raises(ValueError, match="0.00 GiB limit"):
        NpzVolumeDataset(small)
    monkeypatch.setenv("VIDZOO_NPZ_MAX_BYTES", str(2 ** 20))
    assert len(NpzVolumeDataset(small)) == 4
    monkeypatch.setenv("VIDZOO_NPZ_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="VIDZOO_NPZ_MAX_BYTES must be a number of bytes, got 'lots'"):
        NpzVolumeDataset(small)


def test_split_indices_stratified_and_reproducible():
    labels = [0] * 10 + [1] * 5 + [2] * 2
    tr, va = split_indices(labels, val_fraction=0.2, seed=1)
    assert sorted(tr + va) == list(range(17)) and not set(tr) & set(va)
    assert [sum(labels[i] == c for i in va) for c in range(3)] == [2, 1, 1]  # per class, >= 1
    assert (tr, va) == split_indices(labels, val_fraction=0.2, seed=1)
    assert va != split_indices(labels, val_fraction=0.2, seed=2)[1]
    tr, va = split_indices(10, val_fraction=0.3)
    assert len(va) == 3 and len(tr) == 7


def test_train_val_split_on_dataset(video_root):
    ds = VideoFolder(video_root, FrameSampler(num_frames=2))
    tr, va = train_val_split(ds, val_fraction=0.5, seed=0)
    assert len(tr) == 2 and len(va) == 2
    assert sorted(ds.targets[i] for i in va.indices) == [0, 1]  # one of each class
    assert va[0][0].shape == (3, 2, S, S)
