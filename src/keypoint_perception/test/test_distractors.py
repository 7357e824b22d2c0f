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
"""Procedural clutter pasted into training views keeps the labels exact."""

import numpy as np

from keypoint_perception.training.data import augment_view
from keypoint_perception.training.distractors import PATCHES, paste_distractors


def test_patches_have_the_advertised_content():
    rng = np.random.default_rng(0)
    for name, make in PATCHES.items():
        img, mask = make(rng, 120)
        assert img.dtype == np.float32 and mask.shape == img.shape, name
        assert img.shape[1] == 120 or img.shape[0] == 120, name
        inside = img[mask > 0.5]
        assert inside.size > 0.3 * img.size, name
        assert inside.std() > 10, name  # textured, not a flat blob


def test_paste_distractors_changes_the_image_but_not_near_keypoints():
    rng = np.random.default_rng(1)
    h, w = 192, 256
    changed_any = 0
    for _ in range(20):
        image = np.full((h, w, 3), 128, np.uint8)
        uv = rng.uniform((20, 20), (w - 20, h - 20), (4, 2)).astype(np.float32)
        vis = np.array([2, 1, 2, 0], np.uint8)
        out = paste_distractors(image, uv, vis, rng, keypoint_margin=6.0)
        assert out.shape == image.shape and out.dtype == np.uint8
        diff = np.abs(out.astype(int) - image).max(axis=2) > 0
        changed_any += diff.any()
        for (u, v), s in zip(uv, vis):
            if s == 0:
                continue  # unlabelled keypoints need no clearance
            r0, c0 = int(round(v)), int(round(u))
            # the feathered edge may reach ~2 px into the margin, never the keypoint
            assert not diff[r0 - 3:r0 + 4, c0 - 3:c0 + 4].any()
    assert changed_any >= 15


def test_augment_view_with_distractors_keeps_labels():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 255, (192, 256, 3), dtype=np.uint8)
    uv = np.array([[50, 40], [200, 40], [200, 150], [50, 150]], np.float32)
    vis = np.full(4, 2, np.uint8)
    a = augment_view(image, uv, vis, np.random.default_rng(3), distractor_prob=0.0)
    b = augment_view(image, uv, vis, np.random.default_rng(3), distractor_prob=1.0)
    np.testing.assert_array_equal(a[1], b[1])  # same geometric warp and labels
    np.testing.assert_array_equal(a[2], b[2])
