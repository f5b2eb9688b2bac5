"""Decoding: every mode and container to uint8 RGB, and clear errors for bad files."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import synthetic
from braintumor.data import images
from braintumor.errors import ImageReadError
from braintumor.data.images import decode_rgb, is_image_file, load_rgb, resize_pad


def _save(img: Image.Image, path, fmt, **kw):
    img.save(path, fmt, **kw)
    return path


@pytest.fixture
def rgb():
    return synthetic.picture(np.random.default_rng(7), h=24, w=36)


# -- every kind the synthetic dataset uses ------------------------------------------------

@pytest.mark.parametrize("kind", synthetic.KINDS, ids=lambda k: k.name)
def test_every_mode_decodes_to_uint8_rgb(kind, rgb, tmp_path):
    path = tmp_path / f"x{kind.ext}"
    kind.write(rgb, path)
    with Image.open(path) as img:  # the file really is in the mode under test
        assert (img.format, img.mode) == (kind.format, kind.mode)
    out = load_rgb(path)
    assert out.dtype == np.uint8
    assert out.shape == (24, 36, 3)  # EXIF-rotated kind comes back upright too
    # the picture survives (not blank, not a constant): lossy modes keep a strong correlation
    grey = rgb.astype(float).mean(axis=2)
    got = out.astype(float).mean(axis=2)
    if kind.name in ("png_la", "png_rgba"):
        got, grey = got[:, 18:], grey[:, 18:]  # left half is mostly transparent -> black
    assert got.std() > 5
    assert np.corrcoef(grey.ravel(), got.ravel())[0, 1] > 0.6


def test_lossless_rgb_png_is_exact(rgb, tmp_path):
    synthetic.write_png_rgb(rgb, tmp_path / "a.png")
    np.testing.assert_array_equal(load_rgb(tmp_path / "a.png"), rgb)


def test_grey_modes_give_three_equal_channels(rgb, tmp_path):
    for kind in ("jpeg_l", "png_l", "png_1bit", "png_16bit"):
        k = synthetic.KINDS_BY_NAME[kind]
        path = tmp_path / f"{kind}{k.ext}"
        k.write(rgb, path)
        out = load_rgb(path)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all(), kind


def test_one_bit_png_is_black_and_white(rgb, tmp_path):
    synthetic.write_png_1bit(rgb, tmp_path / "a.png")
    assert set(np.unique(load_rgb(tmp_path / "a.png"))) == {0, 255}


# -- alpha ------------------------------------------------------------------------------

def test_transparent_red_becomes_black_and_half_alpha_is_blended(tmp_path):
    px = np.zeros((2, 3, 4), np.uint8)
    px[0, 0] = (255, 0, 0, 0)  # fully transparent red
    px[0, 1] = (255, 0, 0, 255)  # opaque red
    px[0, 2] = (200, 100, 50, 128)  # half transparent
    px[1] = (10, 20, 30, 255)
    out = load_rgb(_save(Image.fromarray(px, "RGBA"), tmp_path / "a.png", "PNG"))
    assert out[0, 0].tolist() == [0, 0, 0]
    assert out[0, 1].tolist() == [255, 0, 0]
    np.testing.assert_allclose(out[0, 2], np.array([200, 100, 50]) * 128 / 255, atol=1)
    assert out[1, 0].tolist() == [10, 20, 30]


def test_la_alpha_composited_on_black(tmp_path):
    la = np.array([[[200, 0], [200, 255], [200, 51]]], np.uint8)
    out = load_rgb(_save(Image.fromarray(la, "LA"), tmp_path / "a.png", "PNG"))
    assert out[0, :, 0].tolist() == [0, 200, 40]


@pytest.mark.parametrize("trns", ["index", "bytes"])
def test_palette_transparency_composited_on_black(tmp_path, trns):
    p = Image.new("P", (3, 1))
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (3 * 253))
    p.putdata([0, 1, 2])
    kw = {"transparency": 0} if trns == "index" else {"transparency": bytes([0, 255, 255])}
    out = load_rgb(_save(p, tmp_path / "a.png", "PNG", **kw))
    assert out[0].tolist() == [[0, 0, 0], [0, 255, 0], [0, 0, 255]]


def test_palette_without_transparency_keeps_colours(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 0, 255] + [0] * (3 * 254))
    p.putdata([0, 1])
    out = load_rgb(_save(p, tmp_path / "a.png", "PNG"))
    assert out[0].tolist() == [[255, 0, 0], [0, 0, 255]]


# -- 16-bit -----------------------------------------------------------------------------

def test_16bit_full_range_maps_to_0_255(tmp_path):
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16).reshape(16, 16)
    out = load_rgb(_save(Image.fromarray(ramp), tmp_path / "a.png", "PNG"))
    grey = out[..., 0].ravel().astype(int)
    assert grey.min() == 0 and grey.max() == 255
    assert (np.diff(grey) >= 0).all()  # monotonic
    np.testing.assert_allclose(grey, ramp.ravel() / 257, atol=1)


def test_12bit_scan_in_16bit_container_is_not_left_dark(tmp_path):
    ramp = np.linspace(0, 4095, 64).round().astype(np.uint16).reshape(8, 8)
    out = load_rgb(_save(Image.fromarray(ramp), tmp_path / "a.tif", "TIFF"))
    assert out.min() == 0 and out.max() == 255


# -- EXIF orientation -------------------------------------------------------------------

@pytest.mark.parametrize("orientation, shape, red_at", [
    (1, (10, 20), (0, 0)),  # as stored
    (3, (10, 20), (-1, -1)),  # rotated 180
    (6, (20, 10), (0, -1)),  # rotate 90 clockwise: top-left goes to top-right
    (8, (20, 10), (-1, 0)),  # rotate 90 counter-clockwise: top-left goes to bottom-left
])
def test_exif_orientation_applied(tmp_path, orientation, shape, red_at):
    stored = np.zeros((10, 20, 3), np.uint8)
    stored[...] = (0, 0, 255)
    stored[:4, :4] = (255, 0, 0)  # a red corner marker, top-left as stored
    exif = Image.Exif()
    exif[synthetic.EXIF_ORIENTATION] = orientation
    out = load_rgb(_save(Image.fromarray(stored), tmp_path / "a.jpg", "JPEG", quality=100, exif=exif))
    assert out.shape == (*shape, 3)
    r, c = red_at
    assert out[r, c, 0] > 200 and out[r, c, 2] < 60
    opposite = (-1 if r == 0 else 0, -1 if c == 0 else 0)
    assert out[opposite][2] > 200 and out[opposite][0] < 60  # the opposite corner is blue


# -- other containers ---------------------------------------------------------------------

def test_cmyk_jpeg_decoded_to_rgb(tmp_path):
    img = Image.new("RGB", (8, 8), (200, 30, 60)).convert("CMYK")
    out = load_rgb(_save(img, tmp_path / "a.jpg", "JPEG", quality=100))
    np.testing.assert_allclose(out.reshape(-1, 3).mean(axis=0), [200, 30, 60], atol=4)


def test_gif_first_frame(tmp_path):
    green = Image.new("RGB", (6, 4), (0, 255, 0)).convert("P")
    red = Image.new("RGB", (6, 4), (255, 0, 0)).convert("P")
    path = _save(green, tmp_path / "a.gif", "GIF", save_all=True, append_images=[red])
    with Image.open(path) as img:
        assert img.n_frames == 2
    assert load_rgb(path)[0, 0].tolist() == [0, 255, 0]


def test_tiff_first_page(tmp_path):
    path = _save(Image.new("RGB", (6, 4), (0, 0, 255)), tmp_path / "a.tif", "TIFF",
                 save_all=True, append_images=[Image.new("RGB", (6, 4), (255, 0, 0))])
    with Image.open(path) as img:
        assert img.n_frames == 2
    assert load_rgb(path)[0, 0].tolist() == [0, 0, 255]


def test_decode_bytes_equals_load_file(rgb, tmp_path):
    synthetic.write_jpeg_rgb(rgb, tmp_path / "a.jpg")
    np.testing.assert_array_equal(decode_rgb((tmp_path / "a.jpg").read_bytes()),
                                  load_rgb(tmp_path / "a.jpg"))


# -- bad files --------------------------------------------------------------------------

def _png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming ``width x height`` (RGB), then IEND."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _truncated(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(synthetic.picture(np.random.default_rng(1), 40, 40)).save(buf, fmt)
    return buf.getvalue()[: len(buf.getvalue()) // 2]


@pytest.mark.parametrize("name, data, reason", [
    ("empty.jpg", b"", "empty file"),
    ("truncated.png", _truncated("PNG"), "truncated"),
    ("truncated.jpg", _truncated("JPEG"), "truncated"),
    ("text.jpg", b"hello, I am not an image\n" * 3, "not an image"),
    ("bomb.png", _png_header_only(100_000, 100_000), "decompression bomb"),
    ("huge.png", _png_header_only(8_000, 8_000), "pixel limit"),  # 64 MP: under PIL's own limit
])
def test_bad_files_raise_image_read_error_naming_file_and_reason(tmp_path, name, data, reason):
    path = tmp_path / "class folder" / name
    path.parent.mkdir()
    path.write_bytes(data)
    with pytest.raises(ImageReadError) as info:
        load_rgb(path)
    err = info.value
    assert err.path == str(path)
    assert str(path) in str(err)
    assert reason in err.reason
    assert reason in str(err)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100)
    synthetic.write_png_rgb(np.zeros((10, 11, 3), np.uint8), tmp_path / "a.png")  # 110 px
    with pytest.raises(ImageReadError, match=r"11x10 pixels exceeds the 100-pixel limit"):
        load_rgb(tmp_path / "a.png")
    synthetic.write_png_rgb(np.zeros((10, 10, 3), np.uint8), tmp_path / "b.png")  # exactly 100
    assert load_rgb(tmp_path / "b.png").shape == (10, 10, 3)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageReadError, match="file not found") as info:
        load_rgb(tmp_path / "nope.jpg")
    assert str(tmp_path / "nope.jpg") in str(info.value)
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageReadError, match="directory"):
        load_rgb(tmp_path / "dir.jpg")


def test_image_read_error_is_a_brain_tumor_error():
    from braintumor.errors import BrainTumorError

    with pytest.raises(BrainTumorError):
        decode_rgb(b"", "x.jpg")


@pytest.mark.parametrize("name, expected", [
    ("ct_healthy (1).jpg", True), ("a.JPG", True), ("a.jpeg", True), ("a.png", True),
    ("a.gif", True), ("a.tif", True), ("a.tiff", True), ("a.bmp", True), ("a.webp", True),
    (".DS_Store", False), ("Thumbs.db", False), ("notes.txt", False),
    ("CT image source.txt", False), ("._ct_healthy (1).jpg", False), ("jpg", False),
])
def test_is_image_file(name, expected):
    assert is_image_file(name) is expected


# -- resize_pad -------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, size, box", [
    (10, 20, 40, (10, 30, 0, 40)),  # landscape: full width, centred vertically
    (30, 15, 60, (0, 60, 15, 45)),  # portrait: full height, centred horizontally
    (25, 25, 16, (0, 16, 0, 16)),  # square, downscaled: no padding
    (7, 20, 20, (6, 13, 0, 20)),  # odd padding: 13 px of padding, 6 above, 7 below
])
def test_resize_pad_keeps_aspect_and_pads_black(h, w, size, box):
    out = resize_pad(np.full((h, w, 3), 255, np.uint8), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8
    top, bottom, left, right = box
    inside = np.zeros((size, size), bool)
    inside[top:bottom, left:right] = True
    assert (out[inside] == 255).all()
    assert (out[~inside] == 0).all()


def test_resize_pad_preserves_content_orientation():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :10] = (255, 0, 0)  # left half red, right half blue
    img[:, 10:] = (0, 0, 255)
    out = resize_pad(img, 40)
    assert out[20, 5].tolist() == [255, 0, 0]
    assert out[20, 35].tolist() == [0, 0, 255]
