"""Training data: finding images, splitting, loading, preloading, skipping bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zerodce.data import IMAGE_SUFFIXES, ImageFolder, find_images, load_image, split
from zerodce.io import ImageError


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _gradient(h: int = 24, w: int = 36) -> np.ndarray:
    x = np.linspace(0, 200, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 50, h, dtype=np.float32)[:, None, None]
    return (x + y + np.array([0, 5, 10], np.float32)).clip(0, 255).astype(np.uint8)


class TestFindImages:
    def test_recursive_every_format_sorted(self, tmp_path):
        names = ["a.jpg", "b.JPEG", "sub/c.png", "sub/deep/d.bmp", "e.tif", "f.tiff", "g.webp"]
        for name in names:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).touch()
        (tmp_path / "notes.txt").touch()
        (tmp_path / "folder.png").mkdir()  # a folder with an image suffix is not an image
        found = [p.relative_to(tmp_path).as_posix() for p in find_images([tmp_path])]
        assert found == sorted(names)
        assert {Path(n).suffix.lower() for n in names} <= set(IMAGE_SUFFIXES)

    def test_files_and_duplicates(self, tmp_path):
        image = tmp_path / "x.png"
        image.touch()
        assert find_images([tmp_path, image]) == [image]

    def test_missing_root(self, tmp_path):
        with pytest.raises(ValueError, match="not found"):
            find_images([tmp_path / "nope"])

    def test_no_images(self, tmp_path):
        (tmp_path / "readme.md").touch()
        with pytest.raises(ValueError, match="no images found"):
            find_images([tmp_path])


class TestSplit:
    paths = [Path(f"{i:02d}.png") for i in range(10)]

    def test_sorted_first_train_last_val(self):
        train, val = split(self.paths, 0.2, shuffle=False)
        assert train == self.paths[:8] and val == self.paths[8:]

    def test_shuffled_is_seeded_and_disjoint(self):
        a = split(self.paths, 0.3, seed=1)
        assert a == split(self.paths, 0.3, seed=1)
        assert a != split(self.paths, 0.3, seed=2)
        train, val = a
        assert len(val) == 3 and sorted(train + val) == self.paths

    def test_no_validation(self):
        assert split(self.paths, 0.0)[1] == []

    @pytest.mark.parametrize("fraction", [-0.1, 1.0])
    def test_bad_fraction(self, fraction):
        with pytest.raises(ValueError, match="validation fraction"):
            split(self.paths, fraction)

    def test_too_few(self):
        with pytest.raises(ValueError, match="too few"):
            split(self.paths[:1], 0.6)


class TestLoadImage:
    def test_resized_uint8(self, tmp_path):
        image = load_image(_save(tmp_path / "a.png", _gradient()), 16)
        assert image.shape == (3, 16, 16) and image.dtype == torch.uint8
        # Antialiased downscale keeps the mean (within rounding).
        assert abs(image.float().mean().item() - _gradient().astype(float).mean()) < 2

    def test_gray_and_alpha_become_rgb(self, tmp_path):
        gray = load_image(_save(tmp_path / "g.png", _gradient()[..., 0]), 8)
        assert gray.shape == (3, 8, 8) and torch.equal(gray[0], gray[2])
        rgba = np.concatenate([_gradient(), np.zeros((24, 36, 1), np.uint8)], axis=2)
        assert load_image(_save(tmp_path / "a.png", rgba), 8).shape == (3, 8, 8)

    def test_16bit_keeps_scale(self, tmp_path):
        array = np.full((16, 16), 1000, np.uint16)  # 1000/65535: dark, not white
        path = tmp_path / "deep.png"
        Image.fromarray(array).save(path)
        assert load_image(path, 16).max().item() == round(1000 / 65535 * 255)

    def test_unreadable(self, tmp_path):
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"\xff\xd8 not really")
        with pytest.raises(ImageError, match="bad.jpg"):
            load_image(bad, 16)


class TestImageFolder:
    @pytest.fixture
    def folder(self, tmp_path):
        for k, suffix in enumerate((".jpg", ".png", ".bmp", ".tiff", ".webp")):
            _save(tmp_path / f"img{k}{suffix}", _gradient())
        (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        (tmp_path / "empty.jpg").touch()
        return tmp_path

    @pytest.mark.parametrize("preload", [True, False])
    def test_skips_and_reports_bad_files(self, folder, preload):
        data = ImageFolder(find_images([folder]), 16, preload=preload)
        assert len(data) == 5
        assert [s.path.name for s in data.skipped] == ["broken.png", "empty.jpg"]
        assert all(s.path.name in s.reason for s in data.skipped)

    @pytest.mark.parametrize("preload", [True, False])
    def test_items(self, folder, preload):
        data = ImageFolder(find_images([folder]), 16, preload=preload)
        image, index = data[3]
        assert index == 3 and image.shape == (3, 16, 16) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert torch.equal(image, load_image(data.paths[3], 16).float() / 255)

    def test_preload_equals_streaming(self, folder):
        paths = find_images([folder])
        a, b = ImageFolder(paths, 16, preload=True), ImageFolder(paths, 16, preload=False)
        assert all(torch.equal(a[i][0], b[i][0]) for i in range(len(a)))

    def test_too_small(self, folder):
        with pytest.raises(ValueError, match="at least 16"):
            ImageFolder(find_images([folder]), 8)


class TestCrops:
    @pytest.fixture
    def data(self, tmp_path):
        rng = np.random.default_rng(0)
        for k in range(3):
            _save(tmp_path / f"{k}.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
        return find_images([tmp_path])

    def test_crop_is_a_window_of_the_image(self, data):
        whole, cropped = ImageFolder(data, 32), ImageFolder(data, 32, crop=16)
        image, window = whole[1][0], cropped[1][0]
        assert window.shape == (3, 16, 16)
        found = [(t, l) for t in range(17) for l in range(17) if torch.equal(image[:, t:t + 16, l:l + 16], window)]
        assert len(found) == 1

    def test_positions_depend_on_seed_and_epoch_only(self, data):
        a, b = ImageFolder(data, 32, crop=16, seed=3), ImageFolder(data, 32, crop=16, seed=3, preload=False)
        assert torch.equal(a[0][0], b[0][0])
        first = a[0][0]
        a.set_epoch(1)
        assert not torch.equal(a[0][0], first)
        assert not torch.equal(ImageFolder(data, 32, crop=16, seed=4)[0][0], first)

    def test_crop_larger_than_image(self, data):
        with pytest.raises(ValueError, match="must not be larger"):
            ImageFolder(data, 32, crop=48)
