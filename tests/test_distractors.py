"""Distractor banks for SECANT's mixup/cutmix: reproducible procedural families that differ
measurably, matplotlib's sample images, folders and .npz archives with bad files skipped and
counted, the config's validation and the contact sheet."""

import hashlib
import os

import jax
import numpy as np
import pytest
from PIL import Image

from vasa.distill import distractors as D
from vasa.media import MediaFileError
from vasa.run.fields import MissingPathError

DRAWN = {"fractal": D.fractal_noise, "shapes": D.random_shapes, "patterns": D.random_patterns,
         "matplotlib": D.packaged_photos}


def luma(images):
    return images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def spectrum_fit(image):
    """(slope, r2) of a straight line through the radially averaged power spectrum of the
    image's luma in log-log axes (12 log-spaced frequency bands)."""
    g = luma(image)
    power = np.abs(np.fft.fft2(g - g.mean())) ** 2
    h, w = g.shape
    radius = np.sqrt(np.fft.fftfreq(h)[:, None] ** 2 + np.fft.fftfreq(w)[None] ** 2)
    edges = np.geomspace(2 / min(h, w), 0.5, 13)
    band = np.digitize(radius, edges)
    f = np.log([radius[band == i].mean() for i in range(1, 13)])
    p = np.log([power[band == i].mean() for i in range(1, 13)])
    slope, intercept = np.polyfit(f, p, 1)
    residual = p - (slope * f + intercept)
    return slope, 1 - residual.var() / p.var()


def num_colors(image):
    return len(np.unique(image.reshape(-1, 3), axis=0))


def tile_colors(image, tile=28):
    """The number of colours in each ``tile x tile`` block of the image."""
    h, w = image.shape[:2]
    return np.array([num_colors(image[i:i + tile, j:j + tile]) for i in range(0, h - tile + 1, tile)
                     for j in range(0, w - tile + 1, tile)])


def flat_fraction(images):
    """Per image, the fraction of pixels equal (all channels) to their right neighbour."""
    return (images[:, :, 1:] == images[:, :, :-1]).all(-1).mean(axis=(1, 2))


# ------------------------------------------------------------------------------------------
# drawn sources
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", sorted(DRAWN))
def test_shape_dtype_and_determinism(source):
    fn = DRAWN[source]
    a = fn(3, 6, (20, 36))
    assert a.shape == (6, 20, 36, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, fn(3, 6, (20, 36)))
    b = fn(4, 6, (20, 36))
    assert all(not np.array_equal(x, y) for x, y in zip(a, b))
    assert len({x.tobytes() for x in a}) == 6  # every image its own
    assert fn(3, 0, 16).shape == (0, 16, 16, 3)


def test_bit_exact_reference():
    """The procedural families use only exactly rounded arithmetic on PCG64 draws, so these
    digests hold on every machine (they change only if NumPy changes its Generator streams)."""
    digests = {fn.__name__: hashlib.sha256(fn(7, 4, (16, 24)).tobytes()).hexdigest()[:16]
               for fn in (D.fractal_noise, D.random_shapes, D.random_patterns)}
    assert digests == {"fractal_noise": "1b28b681dc2db30b", "random_shapes": "c51ecbcae4b5b73b",
                       "random_patterns": "908b63b173250fbb"}


def test_fractal_noise_has_a_smooth_power_law_spectrum():
    images = D.fractal_noise(0, 24, 84)
    fits = np.array([spectrum_fit(x) for x in images])
    assert (fits[:, 1] > 0.9).all(), fits[:, 1].min()  # a straight line in log-log axes
    assert (fits[:, 0] < -1.5).all() and (fits[:, 0] > -3.6).all(), fits[:, 0]
    # the persistence sets the exponent: p = 0.9 about natural images' 1/f^2, p = 0.5 steeper
    grainy = np.mean([spectrum_fit(x)[0] for x in D.fractal_noise(0, 8, 84, persistence=(0.9, 0.9))])
    smooth = np.mean([spectrum_fit(x)[0] for x in D.fractal_noise(0, 8, 84, persistence=(0.5, 0.5))])
    assert -2.5 < grainy < -1.5 and smooth < grainy - 0.6, (grainy, smooth)
    # no flat regions, thousands of colours, the range used without clipping to one value
    assert flat_fraction(images).max() < 0.1
    assert min(num_colors(x) for x in images) > 1000
    assert images.min() < 64 or images.max() > 192


def test_shapes_are_flat_regions_of_few_colours():
    images = D.random_shapes(0, 64, 84, num_shapes=(3, 12))
    colors = [num_colors(x) for x in images]
    assert max(colors) <= 13 and min(colors) >= 2  # background + at most 12 shapes, no anti-aliasing
    assert flat_fraction(images).min() > 0.85
    # shapes cover a real part of the image: the background is rarely all of it
    background = images[:, :1, :1]
    covered = (images != background).any(-1).mean(axis=(1, 2))
    assert np.median(covered) > 0.1
    one = D.random_shapes(0, 16, 32, num_shapes=(1, 1))
    assert max(num_colors(x) for x in one) <= 2


def test_patterns_are_two_colour_and_periodic():
    images = D.random_patterns(0, 64, 84)
    for x in images:
        colors, counts = np.unique(x.reshape(-1, 3), axis=0, return_counts=True)
        assert len(colors) == 2 and counts.min() > 0.25 * counts.sum()  # both colours, roughly balanced
    # not a power law: the spectrum has peaks (harmonics), not a straight fall-off
    fits = np.array([spectrum_fit(x) for x in images])
    assert np.median(fits[:, 1]) < 0.9 < np.median([spectrum_fit(x)[1] for x in D.fractal_noise(0, 16, 84)])
    # periods of at most 24 px: every 28x28 tile shows both colours (shapes leave plain tiles)
    assert min(tile_colors(x).min() for x in images) == 2
    assert np.mean([tile_colors(x).min() == 1 for x in D.random_shapes(0, 64, 84)]) > 0.5


def test_matplotlib_photos_find_their_files_and_vary():
    folder = D.sample_data_dir()
    for name in D.PACKAGED_IMAGES:
        assert os.path.isfile(os.path.join(folder, name)), name
    images = D.packaged_photos(0, 48, 64)
    assert images.shape == (48, 64, 64, 3)
    assert len({x.tobytes() for x in images}) == 48
    assert min(num_colors(x) for x in images) > 50  # photographs, not flat colours
    # crops of all three images appear: the photograph's face and uniform, the relief map, the gift box
    means = images.reshape(48, -1, 3).mean(1)
    assert (means.std(0) > 10).all()


# ------------------------------------------------------------------------------------------
# folders and archives
# ------------------------------------------------------------------------------------------


def three_bands(h=20, w=40):
    """Red | green | blue columns (quarter, half, quarter): a centre crop to a square is green."""
    x = np.zeros((h, w, 3), np.uint8)
    x[:, : w // 4, 0] = 255
    x[:, w // 4: 3 * w // 4, 1] = 255
    x[:, 3 * w // 4:, 2] = 255
    return x


def test_folder_skips_and_counts_bad_files(tmp_path):
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(three_bands()).save(root / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / "sub" / "b.JPG")
    Image.fromarray(three_bands()).save(root / "c.png")
    with open(root / "c.png", "r+b") as f:  # truncated PNG
        f.truncate(os.path.getsize(root / "c.png") // 2)
    (root / "notes.txt").write_text("not an image")
    (root / "sub" / "empty.jpg").write_bytes(b"")
    (root / ".hidden.png").write_bytes(b"junk")  # hidden files are not candidates
    with pytest.warns(UserWarning, match=r"skipped 3 of 5 files") as record:
        bank = D.load_folder(root, 16)
    message = str(record[0].message)
    for name, why in (("c.png", "truncated or corrupt PNG"), ("notes.txt", "not an image file (.txt)"),
                      ("empty.jpg", "empty file (0 bytes)")):
        assert name in message and why in message, message
    assert ".hidden" not in message
    assert bank.shape == (2, 16, 16, 3) and bank.dtype == np.uint8
    # a.png is centre-cropped to a square (the green half), then resized: no red or blue inside
    a = bank[0].astype(int)
    assert (a[2:-2, 2:-2] == [0, 255, 0]).all() and a[..., 0].max() < 128 and a[..., 2].max() < 128


def test_folder_subset(tmp_path):
    for i in range(6):
        Image.fromarray(np.full((10, 10, 3), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
    everything = D.load_folder(tmp_path, 4)
    np.testing.assert_array_equal(everything[:, 0, 0, 0], 10 * np.arange(6))  # sorted by name
    some = D.load_folder(tmp_path, 4, max_images=3, seed=1)
    assert some.shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(some, D.load_folder(tmp_path, 4, max_images=3, seed=1))
    values = some[:, 0, 0, 0]
    assert set(values) < set(10 * np.arange(6)) and (np.diff(values) > 0).all()


def test_empty_or_unreadable_folder_is_a_clear_error(tmp_path):
    empty = tmp_path / "nothing_here"
    empty.mkdir()
    with pytest.raises(ValueError, match="nothing_here.*holds no readable image"):
        D.load_folder(empty, 16)
    bad = tmp_path / "all_bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"")
    with pytest.warns(UserWarning, match="skipped 1 of 1"), pytest.raises(ValueError, match="all_bad"):
        D.load_folder(bad, 16)
    with pytest.raises(MissingPathError, match="missing_dir"):
        D.load_folder(tmp_path / "missing_dir", 16)


def test_npz_archives(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 10, 20, 3), dtype=np.uint8)
    images[1] = three_bands(10, 20)
    good = tmp_path / "coco.npz"
    np.savez(good, images=images, labels=np.arange(5))
    bank = D.load_npz(good, (12, 12))
    assert bank.shape == (5, 12, 12, 3) and bank.dtype == np.uint8
    assert (bank[1, 2:-2, 2:-2] == [0, 255, 0]).all()
    assert D.load_npz(good, 8, max_images=3, seed=1).shape == (3, 8, 8, 3)
    np.testing.assert_array_equal(D.load_npz(good, 8, key="images"), D.load_npz(good, 8))
    grey = tmp_path / "grey.npz"
    np.savez(grey, rng.integers(0, 256, (2, 9, 9), dtype=np.uint8))  # one array, any name
    g = D.load_npz(grey, 9)
    assert g.shape == (2, 9, 9, 3) and (g[..., 0] == g[..., 2]).all()

    cases = [({"images": np.zeros((4, 10), np.uint8)}, "array 'images' is uint8 with shape (4, 10): expected uint8"),
             ({"images": np.zeros((2, 8, 8, 3), np.float32)}, "is float32 with shape (2, 8, 8, 3)"),
             ({"images": np.zeros((0, 8, 8, 3), np.uint8)}, "holds no images"),
             ({"a": images, "b": images}, "holds no an array named 'images' (or a single array); its arrays: a, b")]
    for i, (arrays, phrase) in enumerate(cases):
        path = tmp_path / f"bad{i}.npz"
        np.savez(path, **arrays)
        with pytest.raises(MediaFileError) as e:
            D.load_npz(path, 8)
        assert phrase in str(e.value) and f"bad{i}.npz" in str(e.value), str(e.value)
    with pytest.raises(MediaFileError, match="array 'pixels'"):
        D.load_npz(good, 8, key="pixels")
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_text("hello")
    with pytest.raises(MediaFileError, match="corrupt.npz.*not a readable NumPy .npz"):
        D.load_npz(corrupt, 8)
    with pytest.raises(MissingPathError, match="nope.npz"):
        D.load_npz(tmp_path / "nope.npz", 8)


# ------------------------------------------------------------------------------------------
# the bank and its config
# ------------------------------------------------------------------------------------------


def test_make_bank_concatenates_sources_in_order(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((12, 12, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    np.savez(tmp_path / "a.npz", images=np.full((2, 6, 6, 3), 200, np.uint8))
    config = D.DistractorConfig(sources=("shapes", "folder", "fractal", "npz"), num_images=4, image_size=(16, 24),
                                seed=5, folder=str(folder), npz=str(tmp_path / "a.npz"))
    bank = D.make_bank(config)
    assert isinstance(bank, jax.Array) and bank.dtype == np.uint8 and bank.shape == (4 + 3 + 4 + 2, 16, 24, 3)
    bank = np.asarray(bank)
    np.testing.assert_array_equal(bank[:4], D.random_shapes(5, 4, (16, 24)))
    np.testing.assert_array_equal(bank[4:7, 0, 0, 0], [0, 40, 80])
    np.testing.assert_array_equal(bank[7:11], D.fractal_noise(5, 4, (16, 24)))
    assert (bank[11:] == 200).all()
    np.testing.assert_array_equal(np.asarray(D.make_bank(config)), bank)
    other = np.asarray(D.make_bank(D.DistractorConfig(sources=("shapes",), num_images=4, image_size=(16, 24), seed=6)))
    assert not np.array_equal(other, bank[:4])


def test_config_validation(tmp_path):
    D.DistractorConfig().validate()
    cases = [
        ({"sources": ("fractal", "fractal")}, "DistractorConfig.sources=('fractal', 'fractal') is not allowed: it must be distinct"),
        ({"sources": ("coco",)}, "it must be a tuple whose items are each one of fractal, shapes"),
        ({"sources": ()}, "of length >= 1"),
        ({"sources": ("folder",)}, "DistractorConfig.folder=None is not allowed when 'folder' is one of the sources"),
        ({"folder": str(tmp_path)}, "add 'folder' to sources"),
        ({"sources": ("npz",), "npz": str(tmp_path / "x.npz")}, "DistractorConfig.npz="),
        ({"npz_key": "images"}, "'npz' is not one of the sources"),
        ({"image_size": (0, 84)}, "DistractorConfig.image_size=(0, 84)"),
        ({"num_images": 0}, "DistractorConfig.num_images=0"),
        ({"scene_tasks": ("dmc/cartpol_swingup",)}, "Closest matches: dmc/cartpole_swingup"),
        ({"scene_tasks": ("toy/pendulum",)}, "an MJX task id (dmc/* or brax/*)"),
        ({"scene_appearance": "color_medium"}, "one of train, color_easy"),
    ]
    for kwargs, phrase in cases:
        with pytest.raises(ValueError) as e:
            D.DistractorConfig(**kwargs).validate()
        assert phrase in str(e.value), (kwargs, str(e.value))
    with pytest.raises(MissingPathError):
        D.DistractorConfig(sources=("folder",), folder=str(tmp_path / "missing")).validate()
    with pytest.raises(ValueError, match="DistractorConfig.sources"):
        D.make_bank(D.DistractorConfig(sources=("coco",)))


def test_save_grid(tmp_path):
    bank = np.random.default_rng(0).integers(0, 256, (10, 8, 6, 3), dtype=np.uint8)
    path = D.save_grid(bank, tmp_path / "sheet" / "grid.png", columns=4, gap=2)
    sheet = np.asarray(Image.open(path))
    assert sheet.shape == (3 * 10 + 2, 4 * 8 + 2, 3)
    np.testing.assert_array_equal(sheet[2 + 10: 2 + 10 + 8, 2 + 8: 2 + 8 + 6], bank[5])  # row 1, column 1
    assert (sheet[:2] == 255).all() and (sheet[-10:, 2 + 2 * 8:] == 255).all()  # gaps; no 11th and 12th images
    with pytest.raises(ValueError, match="uint8"):
        D.save_grid(bank.astype(np.float32), tmp_path / "x.png")


@pytest.mark.slow
def test_scene_frames():
    """One task at 16x16, two images: compiles MJX (about 10-40 s on a 2-core CPU)."""
    frames = D.scene_frames(0, 2, 16, tasks=("dmc/cartpole_swingup",), appearance="color_hard", steps=2)
    assert frames.shape == (2, 16, 16, 3) and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[1])  # each draws its own look
    assert all(num_colors(x) > 4 for x in frames)  # a rendered scene, not a blank frame
