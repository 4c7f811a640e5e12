"""Moving MNIST generator invariants, the mnist-test-seq reader, clips:PATH, and clip writers."""

from __future__ import annotations

import os

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg.data import load_dataset
from rnnimg.data import moving_mnist as mm
from rnnimg.data.clips import read_clip
from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices
from rnnimg.errors import RnnImgError
from rnnimg.viz import comparison_frames, frames_strip, write_gif, write_video


@pytest.fixture(scope="module")
def pool() -> np.ndarray:
    images, _ = mnist_5k_arrays()
    return images[mnist_5k_split_indices("train")]


# --------------------------------------------------------------------------------------------
# the generator


def test_trajectories_stay_inside_and_bounce_reverses_velocity():
    positions, velocities = mm.trajectories(400, 30, 2, np.random.default_rng(0))
    assert positions.min() >= 0.0 and positions.max() <= 1.0
    offsets = mm.pixel_offsets(positions)
    assert offsets.min() >= 0 and offsets.max() <= 36  # a 28-pixel digit fits in 64 pixels
    assert np.allclose(np.linalg.norm(velocities, axis=-1), mm.STEP_LENGTH)
    # Replay frame t from frame t-1: move, and wherever that leaves (0, 1) the position is clipped
    # to the wall and that velocity component flips; elsewhere nothing changes.
    moved = positions[:, :-1] + velocities[:, :-1]
    hit = (moved <= 0) | (moved >= 1)
    assert hit.sum() > 100  # the check below is not vacuous
    assert np.array_equal(velocities[:, 1:], np.where(hit, -velocities[:, :-1], velocities[:, :-1]))
    assert np.allclose(positions[:, 1:], np.clip(moved, 0, 1))
    # A coordinate that does not bounce advances by exactly its velocity.
    free = ~hit
    assert np.allclose((positions[:, 1:] - positions[:, :-1])[free], velocities[:, :-1][free])


def test_single_digit_pixels_are_preserved(pool):
    n, t = 40, 20
    clips = mm.moving_mnist_clips(pool, n, t, 1, np.random.default_rng(7))
    assert clips.shape == (n, t, 64, 64) and clips.dtype == np.uint8
    # Redraw the same random numbers to know which digit went where.
    rng = np.random.default_rng(7)
    choice = rng.integers(len(pool), size=(n, 1))
    positions, _ = mm.trajectories(n, t, 1, rng)
    offsets = (36 * positions).astype(int)
    for i in range(n):
        digit = pool[choice[i, 0]]
        for k in range(t):
            y, x = offsets[i, k, 0]
            frame = clips[i, k].copy()
            assert np.array_equal(frame[y:y + 28, x:x + 28], digit)
            frame[y:y + 28, x:x + 28] = 0
            assert not frame.any()  # nothing else on the canvas


def test_two_digits_are_composited_with_max(pool):
    n, t = 20, 10
    clips = mm.moving_mnist_clips(pool, n, t, 2, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    choice = rng.integers(len(pool), size=(n, 2))
    positions, _ = mm.trajectories(n, t, 2, rng)
    offsets = (36 * positions).astype(int)
    overlaps = 0
    for i in range(n):
        for k in range(t):
            canvas = np.zeros((64, 64), np.uint8)
            for d in range(2):
                y, x = offsets[i, k, d]
                region = canvas[y:y + 28, x:x + 28]
                overlaps += bool((region > 0).any() and (pool[choice[i, d]] > 0).any())
                np.maximum(region, pool[choice[i, d]], out=region)
            assert np.array_equal(clips[i, k], canvas)
    assert overlaps > 0  # some digits overlapped, so max (not sum or overwrite) was checked


def test_other_canvas_sizes(pool):
    clips = mm.moving_mnist_clips(pool, 5, 6, 3, np.random.default_rng(0), canvas=40)
    assert clips.shape == (5, 6, 40, 40)
    with pytest.raises(RnnImgError):
        mm.moving_mnist_clips(pool, 1, 5, 1, np.random.default_rng(0), canvas=20)


# --------------------------------------------------------------------------------------------
# the datasets


def test_test_set_is_fixed_and_equals_the_pure_generator():
    ds = load_dataset("moving-mnist", "test", test_clips=64)
    item = ds[17]["frames"]
    assert item.shape == (20, 1, 64, 64) and item.dtype == torch.float32
    assert 0.0 <= item.min() and item.max() <= 1.0 and item.max() > 0.5
    test_pool, _ = mm.digit_pool("mnist-5k", "test")
    expected = mm.moving_mnist_clips(test_pool, 64, 20, 2, np.random.default_rng(mm.TEST_SEED))
    assert torch.equal(item, torch.from_numpy(expected[17]).unsqueeze(1).float() / 255)
    mm._fixed_set.cache_clear()  # regenerate from scratch: same clips
    again = load_dataset("moving-mnist", "test", test_clips=64)
    assert again is not ds
    assert all(torch.equal(ds[i]["frames"], again[i]["frames"]) for i in (0, 17, 63))
    assert torch.equal(ds[-1]["frames"], ds[63]["frames"])
    with pytest.raises(IndexError):
        ds[64]


def test_test_digits_are_held_out_and_val_uses_training_digits():
    test = load_dataset("moving-mnist", "test", test_clips=50, num_digits=1)
    val = load_dataset("moving-mnist", "val", val_clips=50, num_digits=1)
    train = load_dataset("moving-mnist", "train")
    assert not set(test.pool_ids) & set(train.pool_ids)
    assert np.array_equal(val.pool_ids, train.pool_ids)
    assert np.array_equal(test.pool_ids, mnist_5k_split_indices("test"))
    # The digit a test clip shows really is one of the held-out digits, and no training digit.
    images, _ = mnist_5k_arrays()
    train_digits = {images[i].tobytes() for i in train.pool_ids}
    test_digits = {images[i].tobytes() for i in test.pool_ids}
    for i in range(50):
        y, x = test.offsets[i, 0, 0]
        crop = (test[i]["frames"][0, 0, y:y + 28, x:x + 28] * 255).round().byte().numpy()
        assert crop.tobytes() in test_digits and crop.tobytes() not in train_digits
    # val and test are different clips
    assert not torch.equal(val[0]["frames"], test[0]["frames"])


def test_train_clips_are_fresh_but_reproducible_under_seed():
    train = load_dataset("moving-mnist", "train", train_clips=8, frames=6)
    assert len(train) == 8 and len(list(train)) == 8  # iteration stops although clips are random
    torch.manual_seed(123)
    first = [train[i]["frames"] for i in range(4)]
    second_epoch = [train[i]["frames"] for i in range(4)]
    torch.manual_seed(123)
    replay = [train[i]["frames"] for i in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(first, replay))
    assert not any(torch.equal(a, b) for a, b in zip(first, second_epoch))
    assert not torch.equal(first[0], first[1])
    assert first[0].shape == (6, 1, 64, 64)


def test_moving_mnist_loads_through_a_dataloader():
    loader = torch.utils.data.DataLoader(load_dataset("moving-mnist", "val", val_clips=8), batch_size=4)
    batch = next(iter(loader))
    assert batch["frames"].shape == (4, 20, 1, 64, 64)


def test_bad_moving_mnist_options():
    with pytest.raises(RnnImgError, match="digits"):
        load_dataset("moving-mnist", "train", digits="emnist")
    with pytest.raises(RnnImgError, match="test_clips"):
        load_dataset("moving-mnist", "test", test_clips=0)
    with pytest.raises(RnnImgError, match="MNIST not found"):
        load_dataset("moving-mnist", "train", digits="mnist", data_dir="/nonexistent/rnnimg")


def test_mnist_test_seq_layout(tmp_path):
    t, n = 20, 3
    data = np.zeros((t, n, 64, 64), np.uint8)  # (T, N, H, W) as in Srivastava et al.'s file
    for k in range(t):
        for i in range(n):
            data[k, i, 0, 0] = 10 * i + k
            data[k, i, 5, 7] = 200
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, data)
    ds = load_dataset(f"mnist-test-seq:{path}", "test")
    assert len(ds) == n
    for i in range(n):
        frames = ds[i]["frames"]
        assert frames.shape == (t, 1, 64, 64)
        assert torch.equal((frames[:, 0, 0, 0] * 255).round(), torch.arange(t) + 10.0 * i)
        assert torch.all(frames[:, 0, 5, 7] == 200 / 255)
    # The same file as moving-mnist's test split.
    via_option = load_dataset("moving-mnist", "test", test_file=str(path))
    assert torch.equal(via_option[2]["frames"], ds[2]["frames"])
    # Cut to the first 10 frames; a clip-major 4-D file needs layout="NTHW".
    assert load_dataset(f"mnist-test-seq:{path}", "test", frames=10)[1]["frames"].shape[0] == 10
    np.save(tmp_path / "nthw.npy", data.transpose(1, 0, 2, 3))
    ntHW = load_dataset(f"mnist-test-seq:{tmp_path / 'nthw.npy'}", "test", layout="NTHW")
    assert torch.equal(ntHW[1]["frames"], ds[1]["frames"])


def test_openstl_saved_layout(tmp_path):
    trues = np.random.default_rng(0).random((4, 10, 1, 16, 16)).astype(np.float32)  # (N, T, C, H, W)
    np.save(tmp_path / "trues.npy", trues)
    ds = load_dataset(f"mnist-test-seq:{tmp_path / 'trues.npy'}", "test")
    assert len(ds) == 4
    assert torch.equal(ds[3]["frames"], torch.from_numpy(trues[3]))


# --------------------------------------------------------------------------------------------
# clips:PATH and read_clip


def _coded_clips(n: int, t: int, h: int = 8, w: int = 8) -> np.ndarray:
    """uint8 (N, T, H, W) whose pixel (0, 0) is 10 * clip + frame."""
    arr = np.zeros((n, t, h, w), np.uint8)
    arr[:, :, 0, 0] = 10 * np.arange(n)[:, None] + np.arange(t)[None, :]
    return arr


def test_clips_npy_splits_and_windows(tmp_path):
    arr = _coded_clips(12, 8)
    np.save(tmp_path / "c.npy", arr)
    train = load_dataset(f"clips:{tmp_path / 'c.npy'}", "train", frames=4)
    test = load_dataset(f"clips:{tmp_path / 'c.npy'}", "test", frames=4)
    assert len(train) == 11 * 2 and len(test) == 1 * 2  # clip 9 is test; 2 consecutive windows each
    codes = lambda ds: [tuple((ds[k]["frames"][:, 0, 0, 0] * 255).round().int().tolist())
                        for k in range(len(ds))]
    assert codes(test) == [(90, 91, 92, 93), (94, 95, 96, 97)]
    assert (0, 1, 2, 3) in codes(train) and (114, 115, 116, 117) in codes(train)
    assert not any(c[0] // 10 == 9 for c in codes(train))
    sliding = load_dataset(f"clips:{tmp_path / 'c.npy'}", "train", frames=4, stride=1)
    assert len(sliding) == 11 * 5
    item = train[0]["frames"]
    assert item.shape == (4, 1, 8, 8) and item.dtype == torch.float32


def test_clips_npz_float_channels_last(tmp_path):
    arr = np.random.default_rng(0).random((3, 5, 6, 7, 3)).astype(np.float32)  # (N, T, H, W, C)
    np.savez(tmp_path / "c.npz", clips=arr)
    ds = load_dataset(f"clips:{tmp_path / 'c.npz'}", "train")
    assert len(ds) == 3
    assert torch.equal(ds[1]["frames"], torch.from_numpy(arr[1]).permute(0, 3, 1, 2))
    grey = load_dataset(f"clips:{tmp_path / 'c.npz'}", "train", channels=1, frame_size=12)
    assert grey[0]["frames"].shape == (5, 1, 12, 12)


def test_array_value_rules(tmp_path):
    bad = np.full((2, 4, 8, 8), 0.5, np.float32)
    bad[1, 2, 3, 4] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(RnnImgError, match="NaN or Inf"):
        load_dataset(f"clips:{tmp_path / 'nan.npy'}", "train")
    bad[1, 2, 3, 4] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(RnnImgError, match="NaN or Inf"):
        read_clip(tmp_path / "inf.npy")
    np.save(tmp_path / "255.npy", np.full((2, 4, 8, 8), 200.0, np.float32))
    with pytest.raises(RnnImgError, match=r"\[0, 1\]"):
        load_dataset(f"clips:{tmp_path / '255.npy'}", "train")
    np.save(tmp_path / "int.npy", np.full((2, 4, 8, 8), 51, np.int64))  # integer levels are 0-255
    assert torch.allclose(load_dataset(f"clips:{tmp_path / 'int.npy'}", "train")[0]["frames"],
                          torch.full((4, 1, 8, 8), 0.2))
    np.save(tmp_path / "rank.npy", np.zeros((4, 8, 8), np.uint8))
    with pytest.raises(RnnImgError, match="shape"):
        load_dataset(f"clips:{tmp_path / 'rank.npy'}", "train")
    np.save(tmp_path / "rank6.npy", np.zeros((1, 2, 4, 8, 8, 1), np.uint8))
    with pytest.raises(RnnImgError, match="shape"):
        read_clip(tmp_path / "rank6.npy")
    with pytest.raises(RnnImgError, match="no such"):
        load_dataset(f"clips:{tmp_path / 'missing.npy'}", "train")
    with pytest.raises(RnnImgError, match="no such"):
        read_clip(tmp_path / "missing")


def test_clip_shorter_than_needed(tmp_path):
    np.save(tmp_path / "c.npy", _coded_clips(3, 5))
    with pytest.raises(RnnImgError, match="5 frames, 11 are needed"):
        load_dataset(f"clips:{tmp_path / 'c.npy'}", "train", min_frames=11)
    with pytest.raises(RnnImgError, match="5 frames, 8 are needed"):
        load_dataset(f"clips:{tmp_path / 'c.npy'}", "train", frames=8)
    np.save(tmp_path / "one.npy", _coded_clips(1, 5)[0])
    with pytest.raises(RnnImgError, match="5 frames, 6 are needed"):
        read_clip(tmp_path / "one.npy", min_frames=6)


def _write_frames(folder, values, size=(8, 8), names="frame{}.png"):
    folder.mkdir(parents=True)
    for k, v in enumerate(values):
        Image.fromarray(np.full(size, v, np.uint8)).save(folder / names.format(k))


def test_frame_folders_in_natural_order(tmp_path):
    for c in range(10):
        _write_frames(tmp_path / f"clip{c}", [20 * c + k for k in range(12)])
    train = load_dataset(f"clips:{tmp_path}", "train", frames=12)
    test = load_dataset(f"clips:{tmp_path}", "test", frames=12)
    assert len(train) == 9 and len(test) == 1
    frames = test[0]["frames"]  # clip9: frame10 and frame11 must come after frame9, not after frame1
    assert torch.equal((frames[:, 0, 0, 0] * 255).round(), 180.0 + torch.arange(12))
    one = read_clip(tmp_path / "clip3")
    assert one.shape == (12, 1, 8, 8)
    assert torch.equal((one[:, 0, 4, 4] * 255).round(), 60.0 + torch.arange(12))


def test_fewer_than_ten_clips_all_train_and_no_test(tmp_path):
    for c in range(3):
        _write_frames(tmp_path / f"c{c}", [1, 2, 3])
    assert len(load_dataset(f"clips:{tmp_path}", "train")) == 3
    with pytest.raises(RnnImgError, match="too few for a test split"):
        load_dataset(f"clips:{tmp_path}", "test")


def test_frames_of_different_sizes(tmp_path):
    _write_frames(tmp_path / "a", [1, 2, 3])
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "a" / "frame3.png")
    with pytest.raises(RnnImgError, match="frames differ in size"):
        read_clip(tmp_path / "a")
    _write_frames(tmp_path / "b", [1, 2, 3, 4])
    with pytest.raises(RnnImgError, match="frames differ in size"):
        load_dataset(f"clips:{tmp_path}", "train", strict=True)
    with pytest.warns(UserWarning, match="skipped 1 bad clip"):
        ds = load_dataset(f"clips:{tmp_path}", "train")
    assert len(ds) == 1 and ds[0]["frames"].shape == (4, 1, 8, 8)


def test_clips_of_different_sizes_need_frame_size(tmp_path):
    _write_frames(tmp_path / "a", [1, 2, 3], size=(8, 8))
    _write_frames(tmp_path / "b", [1, 2, 3], size=(10, 12))
    with pytest.raises(RnnImgError, match="frame_size"):
        load_dataset(f"clips:{tmp_path}", "train")
    ds = load_dataset(f"clips:{tmp_path}", "train", frame_size=16)
    assert {tuple(ds[i]["frames"].shape) for i in range(2)} == {(3, 1, 16, 16)}


def test_gif_round_trip_and_59x59(tmp_path):
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (7, 59, 59), dtype=np.uint8)
    iio.imwrite(tmp_path / "v.gif", clip, duration=100, loop=0)  # a grey GIF written by imageio
    back = read_clip(tmp_path / "v.gif")
    assert back.shape == (7, 1, 59, 59)
    assert torch.equal((back[:, 0] * 255).round().byte(), torch.from_numpy(clip))
    # The same clip through our own writer, and as a dataset of one video.
    write_gif(back, tmp_path / "ours.gif")
    assert torch.equal(read_clip(tmp_path / "ours.gif"), back)
    ds = load_dataset(f"clips:{tmp_path / 'ours.gif'}", "train", frames=3)
    assert len(ds) == 2 and torch.equal(ds[1]["frames"], back[3:6])


def test_corrupt_and_unsupported_videos(tmp_path):
    (tmp_path / "bad.gif").write_bytes(b"GIF89a this is not a gif")
    with pytest.raises(RnnImgError, match="bad.gif"):
        read_clip(tmp_path / "bad.gif")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(RnnImgError, match="not a clip"):
        read_clip(tmp_path / "x.txt")
    (tmp_path / "v.mp4").write_bytes(b"\x00" * 64)
    try:
        import av  # noqa: F401
        expected = "v.mp4: not a readable video"
    except ImportError:  # a machine without PyAV (the GPU image) gets the install hint instead
        expected = "v.mp4: reading .mp4 videos needs PyAV"
    with pytest.raises(RnnImgError, match=expected):
        read_clip(tmp_path / "v.mp4")


def _without_pyav(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "av" else real(name, *a))


def test_mp4_without_the_video_extra_is_one_line(tmp_path, monkeypatch):
    _without_pyav(monkeypatch)
    (tmp_path / "v.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(RnnImgError, match=r"rnnimg\[video\]"):
        read_clip(tmp_path / "v.mp4")
    with pytest.raises(RnnImgError, match=r"rnnimg\[video\]"):
        write_video(torch.rand(3, 1, 8, 8), tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_mp4_round_trip_through_pyav(tmp_path):
    """What write_video writes, read_clip reads back: same frame count, even-padded size, and
    values within H.264's loss on smooth content (a moving bright square on grey)."""
    pytest.importorskip("av")
    frames = torch.full((6, 1, 32, 40), 0.3)
    for t in range(6):
        frames[t, 0, 8:20, 4 + 3 * t:16 + 3 * t] = 0.9
    path = write_video(frames, tmp_path / "clip.mp4", fps=5)
    assert [p for p in os.listdir(tmp_path) if ".tmp" in p] == []
    back = read_clip(path)
    assert back.shape == (6, 1, 32, 40)
    assert (back - frames).abs().mean() < 0.03
    assert ((back[:, 0, 10:18] > 0.6).float().argmax(-1)[:, 0].diff() > 0).all()  # the square moves right


# --------------------------------------------------------------------------------------------
# writers and layouts


def test_write_gif_frames_and_scale(tmp_path):
    frames = torch.rand(9, 1, 10, 12)
    frames[:, 0, 0, 0] = torch.arange(9) / 8  # every frame differs, so Pillow merges none
    path = write_gif(frames, tmp_path / "out" / "a.gif", fps=5, scale=3)
    back = iio.imread(path, index=None)
    assert back.shape[:3] == (9, 30, 36)
    expected = (frames[:, 0] * 255).round().byte().repeat_interleave(3, 1).repeat_interleave(3, 2)
    assert np.array_equal(back[..., 0], expected.numpy())
    assert [p for p in os.listdir(path.parent) if p.endswith(".tmp")] == []
    assert write_video(frames.expand(-1, 3, -1, -1), tmp_path / "b.gif").exists()  # RGB too
    assert len(iio.imread(tmp_path / "b.gif", index=None)) == 9


def test_write_video_suffixes(tmp_path):
    frames = torch.rand(3, 1, 8, 8)
    with pytest.raises(RnnImgError, match=r"\.gif or \.mp4"):
        write_video(frames, tmp_path / "a.avi")
    with pytest.raises(RnnImgError, match=r"\.gif or \.mp4"):
        write_video(frames, tmp_path / "a")


def test_comparison_frames_layout():
    context, truth, pred = torch.rand(3, 1, 59, 59), torch.rand(4, 1, 59, 59), torch.rand(4, 1, 59, 59)
    movie = comparison_frames(context, truth, pred, border=2, gap=4)
    assert movie.shape == (7, 3, 63, 63 + 4 + 63)
    left, right = movie[..., 2:61, 2:61], movie[..., 2:61, 67 + 2:67 + 61]
    assert torch.equal(left[:3], context.expand(-1, 3, -1, -1))
    assert torch.equal(right[:3], context.expand(-1, 3, -1, -1))  # context shown in both panels
    assert torch.equal(left[3:], truth.expand(-1, 3, -1, -1))
    assert torch.equal(right[3:], pred.expand(-1, 3, -1, -1))
    green, red = torch.tensor([0.1, 0.75, 0.2]), torch.tensor([0.9, 0.15, 0.1])
    assert torch.allclose(movie[2, :, 0, 67], green) and torch.allclose(movie[3, :, 0, 67], red)
    assert torch.allclose(movie[3, :, 0, 0], green)
    alone = comparison_frames(context, None, pred)
    assert alone.shape == (7, 3, 63, 63)


def test_frames_strip_aligns_short_rows_right():
    truth, pred = torch.rand(5, 1, 6, 6), torch.rand(2, 3, 6, 6)
    strip = frames_strip([truth, pred], padding=1)
    assert strip.shape == (3, 2 * 7 + 1, 5 * 7 + 1)
    assert torch.equal(strip[:, 1:7, 1:7], truth[0].expand(3, -1, -1))
    assert torch.equal(strip[:, 8:14, 1 + 3 * 7:7 + 3 * 7], pred[0])  # under truth frame 3
    assert torch.equal(strip[:, 8:14, 1:7], torch.full((3, 6, 6), 0.5))  # empty slot
    labelled = frames_strip([truth, pred], labels=["truth", "pred"])
    assert labelled.shape[2] > strip.shape[2] and 0 <= labelled.min() and labelled.max() <= 1


def _write_idx(path, array: np.ndarray) -> None:
    """MNIST's idx format: big-endian magic (0x0800 | ndim, ubyte), the sizes, then the bytes."""
    header = np.array([0x0800 | array.ndim, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_digits_from_torchvision_mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)
    _write_idx(raw / "train-images-idx3-ubyte", train_images)
    _write_idx(raw / "train-labels-idx1-ubyte", np.arange(30) % 10)
    _write_idx(raw / "t10k-images-idx3-ubyte", test_images)
    _write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(20) % 10)
    test = load_dataset("moving-mnist", "test", digits="mnist", data_dir=str(tmp_path), test_clips=5,
                        num_digits=1)
    assert np.array_equal(test.pool, test_images)
    y, x = test.offsets[4, 7, 0]
    crop = (test[4]["frames"][7, 0, y:y + 28, x:x + 28] * 255).round().byte().numpy()
    assert any(np.array_equal(crop, d) for d in test_images)
    train = load_dataset("moving-mnist", "train", digits="mnist", data_dir=str(tmp_path))
    assert np.array_equal(train.pool, train_images)


def test_corrupt_frame_in_a_clip_folder(tmp_path):
    for c in range(2):
        _write_frames(tmp_path / f"c{c}", [1, 2, 3])
    (tmp_path / "c1" / "frame1.png").write_bytes(b"not a png")
    with pytest.raises(RnnImgError, match="frame1.png"):
        load_dataset(f"clips:{tmp_path}", "train", strict=True)
    with pytest.warns(UserWarning, match="skipped 1 bad clip"):
        assert len(load_dataset(f"clips:{tmp_path}", "train")) == 1


def test_moving_mnist_resized_for_a_small_model():
    import torch.nn.functional as F

    full = load_dataset("moving-mnist", "val", frames=6, val_clips=3)
    small = load_dataset("moving-mnist", "val", frames=6, val_clips=3, frame_size=32, channels=3)
    a, b = full[1]["frames"], small[1]["frames"]
    assert b.shape == (6, 3, 32, 32) and torch.equal(b[:, 0], b[:, 2])
    expected = F.interpolate(a, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(b[:, :1], expected.clamp(0, 1), atol=1e-6)
    assert load_dataset("moving-mnist", "val", frames=6, val_clips=3, frame_size=64).pool_ids is not None


# --------------------------------------------------------------------------------------------
# stochastic bounces (stochastic-moving-mnist)


@pytest.mark.parametrize("jitter", [0.0, 0.5])
def test_stochastic_bounces_keep_speed_change_direction_and_stay_inside(jitter):
    positions, velocities = mm.trajectories(300, 30, 2, np.random.default_rng(4), stochastic=True,
                                            speed_jitter=jitter)
    assert positions.min() >= 0.0 and positions.max() <= 1.0  # no digit leaves the canvas
    offsets = mm.pixel_offsets(positions)
    assert offsets.min() >= 0 and offsets.max() <= 36
    moved = positions[:, :-1] + velocities[:, :-1]  # frame t's move, before its bounce
    low, high = moved <= 0, moved >= 1
    bounced = (low | high).any(-1)  # (N, T-1, D)
    assert bounced.sum() > 500
    before, after = velocities[:, :-1], velocities[:, 1:]
    # Between bounces the velocity (speed and direction) is kept and the digit moves by exactly it.
    assert np.array_equal(after[~bounced], before[~bounced])
    assert np.allclose(positions[:, 1:][~bounced], moved[~bounced])
    speed = np.linalg.norm(velocities, axis=-1)
    if jitter == 0:
        assert np.allclose(speed, mm.STEP_LENGTH)
    else:  # a bounce draws a new speed within the jitter
        assert speed.min() >= mm.STEP_LENGTH * 0.5 - 1e-12 and speed.max() <= mm.STEP_LENGTH * 1.5 + 1e-12
        assert np.std(speed[:, 1:][bounced]) > 0.01
    # Every bounce changes direction: the velocity then points away from each wall it touched ...
    assert (after[..., 0][low[..., 0]] > 0).all() and (after[..., 1][low[..., 1]] > 0).all()
    assert (after[..., 0][high[..., 0]] < 0).all() and (after[..., 1][high[..., 1]] < 0).all()
    unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
    cos = (unit(after[bounced]) * unit(before[bounced])).sum(-1)
    assert (cos < 1 - 1e-9).all()
    # ... and the new direction is random: not the mirror image that plain moving-mnist takes.
    mirror = np.where(low | high, -before, before)[bounced]
    assert not np.allclose(unit(after[bounced]), unit(mirror), atol=1e-3)
    assert np.abs(cos).std() > 0.2


def test_plain_bounces_are_unchanged_by_the_stochastic_option():
    a = mm.trajectories(50, 20, 2, np.random.default_rng(1))
    b = mm.trajectories(50, 20, 2, np.random.default_rng(1), stochastic=False)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = mm.trajectories(50, 20, 2, np.random.default_rng(1), stochastic=True)
    # the same start; the clips part at the first bounce
    assert np.array_equal(a[0][:, 0], c[0][:, 0]) and not np.array_equal(a[0], c[0])


def test_stochastic_moving_mnist_test_set_is_fixed_and_option_equals_the_named_set():
    named = load_dataset("stochastic-moving-mnist", "test", frames=15, test_clips=8)
    option = load_dataset("moving-mnist", "test", frames=15, test_clips=8, stochastic=True)
    plain = load_dataset("moving-mnist", "test", frames=15, test_clips=8)
    mm._fixed_set.cache_clear()
    again = load_dataset("stochastic-moving-mnist", "test", frames=15, test_clips=8)
    for i in range(8):
        assert torch.equal(named[i]["frames"], option[i]["frames"])
        assert torch.equal(named[i]["frames"], again[i]["frames"])
    assert named[0]["frames"].shape == (15, 1, 64, 64)
    assert any(not torch.equal(named[i]["frames"], plain[i]["frames"]) for i in range(8))
    with pytest.raises(RnnImgError, match="stochastic"):
        load_dataset("moving-mnist", "train", speed_jitter=0.2)
    train = load_dataset("stochastic-moving-mnist", "train", frames=6, train_clips=4, frame_size=32)
    assert train[0]["frames"].shape == (6, 1, 32, 32)
