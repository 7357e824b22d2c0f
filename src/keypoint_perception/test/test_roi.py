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
"""Pixel windows: the second look's region of interest and zero-padded crops."""

import numpy as np

from keypoint_perception.core.roi import crop_window, network_view, PixelWindow, roi_around


def test_roi_around_bounds_the_points_at_the_input_aspect():
    rng = np.random.default_rng(3)
    for _ in range(50):
        c = rng.uniform([0, 0], [640, 480])
        pts = np.clip(c + rng.normal(0, 25, (4, 2)), 0, [639, 479])
        roi = roi_around(pts, (640, 480), (256, 192), scale=2.5)
        extent = pts.max(axis=0) - pts.min(axis=0)
        wanted = max(2.5 * max(extent[0], extent[1] * 4 / 3), 256)
        if 640 / wanted < 1.25:
            assert roi is None
            continue
        x0, y0, w, h = roi
        assert abs(w - wanted) <= 1 and abs(w / h - 4 / 3) < 0.02
        # inside the image (it fits), and the points inside the window
        assert 0 <= x0 and x0 + w <= 640 and 0 <= y0 and y0 + h <= 480
        assert (pts >= [x0 - 1, y0 - 1]).all() and (pts <= [x0 + w + 1, y0 + h + 1]).all()
    # too few points, or an object that already fills the image: no second look
    assert roi_around(np.array([[10.0, 10.0], [np.nan, 5.0]]), (640, 480), (256, 192)) is None
    assert roi_around(np.array([[100.0, 100.0], [500.0, 400.0]]), (640, 480), (256, 192)) is None
    # a wide image: the window keeps the network's aspect and may be padded
    x0, y0, w, h = roi_around(np.array([[600.0, 5.0], [700.0, 40.0]]), (1280, 360), (256, 192))
    assert (w, h) == (256, 192) and y0 == 0 and x0 == 522
    assert isinstance(roi_around(np.array([[600.0, 5.0], [700.0, 40.0]]), (1280, 360),
                                 (256, 192)), PixelWindow)


def test_crop_window_pads_outside_the_image():
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    out = crop_window(img, (-2, 3, 5, 4))
    padded = np.pad(img, ((0, 4), (2, 0), (0, 0)))
    np.testing.assert_array_equal(out, padded[3:7, 0:5])
    np.testing.assert_array_equal(crop_window(img[..., 0], (1, 1, 3, 2)), img[1:3, 1:4, 0])


def test_pixel_window_names_its_parts():
    window = PixelWindow(-2, 3, 5, 4)
    assert window.size == (5, 4) and window.offset == (-2, 3)
    assert PixelWindow.whole(np.zeros((6, 8, 3))) == (0, 0, 8, 6)


def test_network_view_cuts_then_averages_down():
    image = np.arange(8 * 12 * 3, dtype=np.uint8).reshape(8, 12, 3)
    whole = network_view(image, (6, 4))
    assert whole.shape == (4, 6, 3) and whole.dtype == np.uint8
    # area interpolation by 2 in each direction: the mean of each 2x2 block
    expected = image.reshape(4, 2, 6, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(whole.astype(float) - expected).max() <= 0.5
    np.testing.assert_array_equal(network_view(image, (6, 4), PixelWindow(0, 0, 12, 8)), whole)
    # a window hanging over the left edge: its left half is padding (zeros)
    half = network_view(image, (4, 4), PixelWindow(-4, 0, 8, 8))
    assert (half[:, :2] == 0).all() and (half[:, 2:] > 0).all()
    assert image.sum() == np.arange(8 * 12 * 3).astype(np.uint8).sum()  # not changed
