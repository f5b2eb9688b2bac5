"""The one place that opens image files.

:func:`load_rgb` turns any supported file into a ``uint8`` RGB array of shape
``(H, W, 3)`` or raises :class:`~braintumor.errors.ImageReadError` naming the file and
the reason. Everything else in the package (index, tf.data pipeline, predict) goes
through it, so a file is decoded the same way in training and in inference.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ImageReadError

# Refuse decompression bombs outright rather than warn: 40 megapixels is far above any
# brain slice (originals in the dataset are at most 1,446 px) and far below what would
# exhaust memory.
MAX_PIXELS = 40_000_000
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

# Truncated files must fail, not decode to a grey bottom half.
ImageFile.LOAD_TRUNCATED_IMAGES = False


def is_image_file(path: str | Path) -> bool:
    """True for files whose extension is an image type (junk like .DS_Store is not)."""
    p = Path(path)
    return p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("._")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha composited on black, 16-bit rescaled."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grey: scale the file's own range to 0-255 (a fixed /257 would
        # leave 12-bit scans almost black).
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) * (255.0 / (hi - lo))
        return Image.fromarray(np.round(scaled).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, rgba).convert("RGB")
    # "1", "L", "CMYK", "YCbCr", "LAB", "HSV": PIL's converters are correct for these.
    return img.convert("RGB")


def decode_rgb(data: bytes, name: str | Path = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to ``uint8`` RGB ``(H, W, 3)``.

    EXIF orientation is applied; multi-frame files (GIF, TIFF) give their first frame.
    """
    if not data:
        raise ImageReadError(name, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageReadError(
                        name,
                        f"{w}x{h} pixels exceeds the {MAX_PIXELS:,}-pixel limit "
                        "(possible decompression bomb); downscale the image first",
                    )
                img.seek(0)
                img = ImageOps.exif_transpose(img)
                img.load()
                rgb = _to_rgb(img)
                arr = np.asarray(rgb, dtype=np.uint8)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(name, "not an image file PIL can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(name, f"decompression bomb refused ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated / corrupt data
        raise ImageReadError(name, f"corrupt or truncated image ({e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(name, f"decoded to unexpected shape {arr.shape}")
    return arr


def read_bytes(path: str | Path) -> bytes:
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(p, "file not found") from None
    except IsADirectoryError:
        raise ImageReadError(p, "is a directory, not an image file") from None
    except OSError as e:
        raise ImageReadError(p, f"cannot read file ({e.strerror or e})") from None


def load_rgb(path: str | Path) -> np.ndarray:
    """Read and decode one image file to ``uint8`` RGB ``(H, W, 3)``."""
    return decode_rgb(read_bytes(path), path)


def resize_pad(image: np.ndarray, size: int) -> np.ndarray:
    """Resize keeping the aspect ratio, then pad with black to ``size x size``.

    Brain slices are not square; stretching them would distort anatomy differently for
    portrait and landscape sources (one more source cue a model could learn).
    """
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(
        Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR), dtype=np.uint8
    )
    out = np.zeros((size, size, 3), dtype=np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top : top + nh, left : left + nw] = resized
    return out
