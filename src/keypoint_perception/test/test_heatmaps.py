# Copyright 2026 The keypoint_perception authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Belief-map targets and decoding against synthetic Gaussians."""

import numpy as np
import pytest

from keypoint_perception.core.heatmaps import (
    canonical_symmetry_order, decode_beliefs, gaussian_targets, heatmap_to_image,
    image_to_heatmap, merge_mirrored_beliefs, merge_rotated_beliefs, nms_peaks)


def test_gaussian_target_peak_and_absent_map():
    maps = gaussian_targets(np.array([[10.0, 5.0], [3.0, 3.0]]), np.array([True, False]),
                            (20, 30), sigma=1.5)
    assert maps.shape == (2, 20, 30) and maps.dtype == np.float32
    assert maps[0, 5, 10] == pytest.approx(1.0)
    assert maps[0, 5, 11] == pytest.approx(np.exp(-1 / (2 * 1.5 ** 2)), rel=1e-5)
    assert maps[1].max() == 0.0


@pytest.mark.parametrize('sigma', [1.0, 1.5, 2.5])
def test_subpixel_decoding_error_on_random_gaussians(sigma):
    rng = np.random.default_rng(1)
    uv = rng.uniform(4, 40, size=(50, 2))
    maps = gaussian_targets(uv, np.ones(50, bool), (48, 64), sigma) * 0.8
    maps = np.where(maps > 0, maps, 1e-4).astype(np.float32)  # untruncated tails
    dec, conf = decode_beliefs(maps, threshold=0.1)
    err = np.linalg.norm(dec - uv, axis=1)
    assert err.max() < 0.02, err.max()        # Taylor step is exact for a Gaussian
    assert np.all(conf >= 0.5)
    # integer-only decoding would be off by up to ~0.7 cells
    assert np.abs(np.round(uv) - uv).max() > 0.3


def test_subpixel_decoding_under_noise_beats_integer_peak():
    rng = np.random.default_rng(2)
    uv = rng.uniform(4, 40, size=(100, 2))
    maps = gaussian_targets(uv, np.ones(100, bool), (48, 64), 1.5)
    maps = np.clip(maps + rng.normal(0, 0.01, maps.shape), 1e-4, 1).astype(np.float32)
    dec, _ = decode_beliefs(maps)
    sub = np.linalg.norm(dec - uv, axis=1).mean()
    integer = np.linalg.norm(np.round(uv) - uv, axis=1).mean()
    assert sub < 0.5 * integer


def test_decoding_missing_keypoint_is_nan():
    maps = np.zeros((2, 10, 10), np.float32)
    maps[0, 4, 6] = 0.9
    dec, conf = decode_beliefs(maps, threshold=0.2)
    assert np.allclose(dec[0], [6, 4]) and conf[0] == pytest.approx(0.9)
    assert np.isnan(dec[1]).all() and conf[1] == 0


def test_nms_returns_separate_peaks_sorted():
    m = np.zeros((20, 20), np.float32)
    m[5, 5], m[5, 6], m[15, 12] = 0.9, 0.5, 0.7
    peaks = nms_peaks(m, kernel=3, threshold=0.1)
    assert peaks.tolist() == [[5, 5, pytest.approx(0.9)], [12, 15, pytest.approx(0.7)]]


def test_image_heatmap_mapping_roundtrip_and_pixel_centres():
    uv = np.array([[0.0, 0.0], [639.0, 479.0], [100.25, 31.5]])
    cells = image_to_heatmap(uv, (640, 480), (64, 48))
    # pixel centres 0..9 fall in cell 0 whose centre is pixel 4.5
    assert cells[0] == pytest.approx([-0.45, -0.45])
    assert np.allclose(heatmap_to_image(cells, (64, 48), (640, 480)), uv)
    assert heatmap_to_image(np.array([[0.0, 0.0]]), (64, 48), (640, 480))[0] == \
        pytest.approx([4.5, 4.5])


@pytest.mark.parametrize('angle_deg', [-40, 0, 30, 60, 90, 120])
def test_canonical_symmetry_order_is_view_defined(angle_deg):
    # a 9x6 board's extreme corners, clockwise, rotated in the image
    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    uv = np.array([[-4, -2.5], [4, -2.5], [4, 2.5], [-4, 2.5]]) @ rot.T * 20 + 200
    sym = [[2, 3, 0, 1]]
    p = canonical_symmetry_order(uv, sym)
    relabelled = uv[[2, 3, 0, 1]]        # same board labelled the other way
    q = canonical_symmetry_order(relabelled, sym)
    assert np.allclose(relabelled[q], uv[p])
    d = uv[p][1] - uv[p][0]
    assert d @ [1, 1] > 0                # 0 -> 1 points to the lower right
    # landscape (0 deg) and portrait (90 deg) are far from the label switch at 135 deg
    if angle_deg in (0, 90):
        assert d @ [1, 1] > 0.7 * np.linalg.norm(d)


def test_canonical_symmetry_order_with_missing_keypoint():
    uv = np.array([[np.nan, np.nan], [90, 12], [92, 60], [12, 58]], float)
    p = canonical_symmetry_order(uv, [[2, 3, 0, 1]])
    assert p.tolist() == [2, 3, 0, 1]    # finite keypoint 0 first


def _rotated_view(uv, image_size, heatmap_size):
    """Cell positions, in the 180-degree rotated belief map, of image points ``uv``."""
    w, h = image_size
    return image_to_heatmap(np.c_[w - 1 - uv[:, 0], h - 1 - uv[:, 1]], image_size, heatmap_size)


@pytest.mark.parametrize('bias_px', [0.0, 3.0])
def test_merge_rotated_beliefs_cancels_a_bias_that_turns_with_the_image(bias_px):
    """Merge maps of an image and of its rotation, both shifted by one network bias.

    The bias (in each network input's own frame) points the other way once
    the rotated maps are rotated back, so the merged peak is unbiased; with
    no bias the merged peak is where both looks put it.
    """
    rng = np.random.default_rng(3)
    image_size, heatmap_size = (640, 480), (64, 48)
    uv = rng.uniform(40, 440, size=(4, 2))
    bias = np.array([bias_px, -0.5 * bias_px])
    present = np.ones(4, bool)
    direct = gaussian_targets(image_to_heatmap(uv + bias, image_size, heatmap_size),
                              present, heatmap_size[::-1], 1.5)
    rot_cells = _rotated_view(uv, image_size, heatmap_size) + bias * 64 / 640
    rotated = gaussian_targets(rot_cells, present, heatmap_size[::-1], 1.5)
    merged = merge_rotated_beliefs(direct[None], rotated[None])
    assert merged.shape == (1, 4, 48, 64) and merged.dtype == np.float32
    dec = heatmap_to_image(decode_beliefs(merged[0])[0], heatmap_size, image_size)
    single = heatmap_to_image(decode_beliefs(direct)[0], heatmap_size, image_size)
    assert np.abs(dec - uv).max() < 0.35 * max(bias_px, 1.0)
    assert np.abs(single - uv - bias).max() < 0.35  # one look keeps its bias
    if bias_px == 0:
        np.testing.assert_allclose(merged[0], direct, atol=1e-6)


def test_merge_rotated_beliefs_finds_the_symmetric_relabelling():
    """Undo the symmetry relabelling of the rotated look.

    A network free to label a symmetric object either way may return the
    rotated look's keypoints 0..3 relabelled by the symmetry.
    """
    uv = np.array([[12.0, 9.0], [50.0, 11.0], [52.0, 38.0], [10.0, 36.0]])
    present = np.ones(4, bool)
    direct = gaussian_targets(uv, present, (48, 64), 1.5)
    rot = np.c_[63 - uv[:, 0], 47 - uv[:, 1]]
    relabelled = gaussian_targets(rot, present, (48, 64), 1.5)[[2, 3, 0, 1]]
    merged = merge_rotated_beliefs(direct[None], relabelled[None], symmetries=[[2, 3, 0, 1]])
    np.testing.assert_allclose(merged[0], direct, atol=1e-6)
    # without the symmetry the labels cannot be matched: the maps stay split
    unmatched = merge_rotated_beliefs(direct[None], relabelled[None])
    assert unmatched[0].max() == pytest.approx(0.5, abs=1e-6)


def test_merge_rotated_beliefs_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match='one shape'):
        merge_rotated_beliefs(np.zeros((1, 4, 8, 8)), np.zeros((1, 4, 8, 9)))
    with pytest.raises(ValueError, match='one shape'):
        merge_rotated_beliefs(np.zeros((4, 8, 8)), np.zeros((4, 8, 8)))


@pytest.mark.parametrize('bias_px', [0.0, 3.0])
def test_merge_mirrored_beliefs_cancels_a_horizontal_bias_and_swaps_mirror_pairs(bias_px):
    """Maps of an image and of its mirror image, with one network bias and a left/right pair.

    Keypoints 0 and 1 are a left/right pair (mirror [1, 0, 2]): in the
    mirrored image the network puts keypoint 0 in channel 1.  Flipped back
    and relabelled, the merged peaks are at the true points, and a bias
    along u (which points the other way in the mirror image) cancels.
    """
    rng = np.random.default_rng(4)
    image_size, heatmap_size = (640, 480), (64, 48)
    uv = rng.uniform(40, 440, size=(3, 2))
    bias = np.array([bias_px, 0.0])
    present = np.ones(3, bool)
    direct = gaussian_targets(image_to_heatmap(uv + bias, image_size, heatmap_size),
                              present, heatmap_size[::-1], 1.5)
    mirrored_uv = np.c_[image_size[0] - 1 - uv[:, 0], uv[:, 1]] + bias
    mirrored = gaussian_targets(image_to_heatmap(mirrored_uv[[1, 0, 2]], image_size,
                                                 heatmap_size), present, heatmap_size[::-1], 1.5)
    merged = merge_mirrored_beliefs(direct[None], mirrored[None], [1, 0, 2])
    assert merged.shape == (1, 3, 48, 64) and merged.dtype == np.float32
    dec = heatmap_to_image(decode_beliefs(merged[0])[0], heatmap_size, image_size)
    assert np.abs(dec - uv).max() < 0.35 * max(bias_px, 1.0)
    if bias_px == 0:
        np.testing.assert_allclose(merged[0], direct, atol=1e-6)
    # without the relabelling the pair's maps would be averaged with each other's
    wrong = merge_mirrored_beliefs(direct[None], mirrored[None], [0, 1, 2])
    assert np.abs(wrong[0, 0] - direct[0]).max() > 0.3


@pytest.mark.parametrize('mirror, words', [([0, 0, 2], 'permutation'), ([1, 2, 0], 'involution'),
                                           ([0, 1], 'permutation')])
def test_a_mirror_that_is_no_involutive_permutation_is_refused(mirror, words):
    maps = np.zeros((1, 3, 4, 5), np.float32)
    with pytest.raises(ValueError, match=words):
        merge_mirrored_beliefs(maps, maps, mirror)
