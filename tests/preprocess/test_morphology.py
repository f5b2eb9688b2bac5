"""OpenCV morphology gives exactly SciPy's results (binary: zeros beyond the edge; grey:
a mirrored edge), so crop-mask's output does not depend on which library computed it."""
import numpy as np
import pytest
from scipy import ndimage

from braintumor.preprocess import morphology
from braintumor.preprocess.head import _disc


def _masks(seed: int, n: int = 6):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 90)))
        # Blobs touching the edges, thin lines and isolated pixels: where borders matter.
        m = ndimage.gaussian_filter(rng.random(shape), 2 + i % 3) > 0.5
        m[rng.integers(0, shape[0]), :] = True
        m |= rng.random(shape) > 0.97
        yield m


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_binary_operations_equal_scipy(radius):
    disc = _disc(radius)
    for m in _masks(radius):
        assert np.array_equal(morphology.binary_erosion(m, disc), ndimage.binary_erosion(m, structure=disc))
        assert np.array_equal(morphology.binary_dilation(m, disc), ndimage.binary_dilation(m, structure=disc))
        assert np.array_equal(morphology.binary_opening(m, disc), ndimage.binary_opening(m, structure=disc))
        assert np.array_equal(morphology.binary_closing(m, disc),
                              ndimage.binary_closing(m, structure=disc, border_value=0))


def test_square_dilation_and_empty_and_full_masks():
    square = np.ones((3, 3), bool)
    for m in [np.zeros((9, 7), bool), np.ones((9, 7), bool), *_masks(7, 2)]:
        assert np.array_equal(morphology.binary_dilation(m, square), ndimage.binary_dilation(m, structure=square))
        assert np.array_equal(morphology.fill_holes(m), ndimage.binary_fill_holes(m))


def test_fill_holes_fills_enclosed_background_only():
    ring = np.zeros((12, 12), bool)
    ring[2:9, 2:9] = True
    ring[4:7, 4:7] = False  # a hole
    ring[0:3, 10:12] = True  # a corner piece: the background behind it reaches the edge
    assert morphology.fill_holes(ring)[5, 5] and not morphology.fill_holes(ring)[0, 0]
    for m in _masks(3):
        assert np.array_equal(morphology.fill_holes(m), ndimage.binary_fill_holes(m))


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_grey_tophats_equal_scipy(radius):
    rng = np.random.default_rng(radius)
    disc = _disc(radius)
    grey = (ndimage.gaussian_filter(rng.random((40, 57)), 1.5) * 255).astype(np.float32)
    grey[10, :] = 255  # a bright line reaching both edges
    assert np.array_equal(morphology.white_tophat(grey, disc), ndimage.white_tophat(grey, footprint=disc))
    assert np.array_equal(morphology.black_tophat(grey, disc), ndimage.black_tophat(grey, footprint=disc))


def test_label_maxima_equals_scipy_maximum():
    rng = np.random.default_rng(0)
    values = rng.random((30, 30)).astype(np.float32) * 255
    labels, n = ndimage.label(rng.random((30, 30)) > 0.6)
    expected = np.asarray(ndimage.maximum(values, labels, index=np.arange(1, n + 1)))
    assert np.array_equal(morphology.label_maxima(values, labels, n)[1:], expected)


def test_refuses_even_or_asymmetric_elements():
    m = np.ones((5, 5), bool)
    with pytest.raises(ValueError, match="odd sides"):
        morphology.binary_erosion(m, np.ones((2, 2)))
    with pytest.raises(ValueError, match="point-symmetric"):
        morphology.binary_dilation(m, np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]]))
