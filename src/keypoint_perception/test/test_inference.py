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
"""KeypointDetector: test-time augmentation with the shipped network (CPU)."""

import cv2
import numpy as np
import pytest

from keypoint_perception.core.camera import CameraModel, project
from keypoint_perception.core.heatmaps import merge_rotated_beliefs
from keypoint_perception.core.checkpoint import save_checkpoint
from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.inference import (crop_window, KeypointDetector, roi_around,
                                                StereoKeypointPipeline)
from keypoint_perception.core.model import BeliefMapNet, make_config
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.training.metrics import symmetric_errors


def _board_image(width=256, height=192, angle=25.0):
    """Draw a 10 x 7 square chessboard, rotated, on a grey ramp (uint8 RGB)."""
    sq = 14
    board = np.kron((np.indices((7, 10)).sum(axis=0) % 2) * 255, np.ones((sq, sq)))
    board = np.pad(board, sq // 2, constant_values=255).astype(np.uint8)
    img = np.tile(np.linspace(60, 160, width, dtype=np.uint8), (height, 1))
    m = cv2.getRotationMatrix2D((board.shape[1] / 2, board.shape[0] / 2), angle, 1.0)
    m[:, 2] += (width / 2 - board.shape[1] / 2 + 9, height / 2 - board.shape[0] / 2 - 5)
    mask = cv2.warpAffine(np.ones_like(board), m, (width, height))
    warped = cv2.warpAffine(board, m, (width, height))
    img = np.where(mask > 0, warped, img)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


@pytest.fixture(scope='module')
def detector():
    return KeypointDetector('checkerboard_lite', test_time_augmentation='rot180')


def test_rot180_beliefs_turn_with_the_image(detector):
    """Check that the merged maps of a rotated image are the rotated merged maps.

    Up to the board's symmetry relabelling; this fails if the rotated look is
    not rotated back onto the right cells or not relabelled.
    """
    img = _board_image()
    assert (detector.config.input_width, detector.config.input_height) == img.shape[1::-1]
    b0, b1 = detector.infer([img, np.ascontiguousarray(img[::-1, ::-1])])
    back = b1[:, ::-1, ::-1]
    perms = [np.arange(4)] + [np.asarray(p) for p in detector.object_class.symmetries]
    err = min(np.abs(back[p] - b0).max() for p in perms)
    assert err < 1e-4
    # and the augmentation changes something: one look alone is not equivariant
    detector.test_time_augmentation = 'none'
    try:
        p0, p1 = detector.infer([img, np.ascontiguousarray(img[::-1, ::-1])])
    finally:
        detector.test_time_augmentation = 'rot180'
    assert min(np.abs(p1[p][:, ::-1, ::-1] - p0).max() for p in perms) > 1e-3
    # rot180 is the merge of the two single looks (the rotated image's look is the
    # rotated look of the image)
    merged = merge_rotated_beliefs(p0[None], p1[None], detector.object_class.symmetries)
    np.testing.assert_allclose(b0, merged[0], atol=1e-5)


def test_auto_takes_the_checkpoints_choice_and_bad_names_are_refused(tmp_path):
    oc = load_object_class('checkerboard')
    model = BeliefMapNet(make_config('lite', oc.num_keypoints))
    plain, validated = tmp_path / 'plain.pt', tmp_path / 'validated.pt'
    save_checkpoint(str(plain), model, oc, meta={})
    save_checkpoint(str(validated), model, oc, meta={'test_time_augmentation': 'rot180'})
    assert KeypointDetector(str(plain)).test_time_augmentation == 'none'
    assert KeypointDetector(str(validated)).test_time_augmentation == 'rot180'
    assert KeypointDetector(str(validated), test_time_augmentation='none') \
        .test_time_augmentation == 'none'
    with pytest.raises(ValueError, match='flip'):
        KeypointDetector(str(plain), test_time_augmentation='flip')


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


def test_crop_window_pads_outside_the_image():
    img = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    out = crop_window(img, (-2, 3, 5, 4))
    padded = np.pad(img, ((0, 4), (2, 0), (0, 0)))
    np.testing.assert_array_equal(out, padded[3:7, 0:5])
    np.testing.assert_array_equal(crop_window(img[..., 0], (1, 1, 3, 2)), img[1:3, 1:4, 0])


def _render_board_pair(depth=1.2, tilt_deg=20.0):
    """Both views of a rectified rig seeing the class's board far away.

    Returns:
        left, right (480, 640, 3) uint8 RGB, their CameraModels and the
        (4, 3) true keypoints in the left optical frame (metres).
    """
    oc = load_object_class('checkerboard')
    f, cx, cy, baseline = 500.0, 319.5, 239.5, 0.1
    cams = []
    for tx in (0.0, -f * baseline):
        P = np.array([[f, 0, cx, tx], [0, f, cy, 0], [0, 0, 1, 0]])
        cams.append(CameraModel(640, 480, P[:, :3], [], '', np.eye(3), P))
    # 10 x 7 squares of 25 mm and a 12.5 mm white margin, 1 mm per texture pixel
    squares = np.kron(1 - (np.indices((7, 10)).sum(axis=0) % 2), np.ones((25, 25)))
    texture = np.pad(np.uint8(230 * squares + 15), 12, constant_values=240)
    a = np.radians(tilt_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    t = np.array([0.05, -0.03, depth])
    # texture pixel centre (x, y) -> object (X, Y, 0) metres
    A = np.array([[1e-3, 0, -0.1375 + 5e-4], [0, 1e-3, -0.1 + 5e-4], [0, 0, 0], [0, 0, 1]])
    pose = np.eye(4)
    pose[:3, :3], pose[:3, 3] = R, t
    images = []
    for cam in cams:
        H = cam.P @ pose @ A
        back = np.tile(np.linspace(70, 150, 640, dtype=np.uint8), (480, 1))
        warped = cv2.warpPerspective(texture, H, (640, 480), flags=cv2.INTER_AREA)
        mask = cv2.warpPerspective(np.ones_like(texture), H, (640, 480))
        images.append(cv2.cvtColor(np.where(mask > 0, warped, back), cv2.COLOR_GRAY2RGB))
    return images[0], images[1], cams[0], cams[1], oc.template @ R.T + t


def test_second_look_finds_a_small_board_in_whole_image_pixels(detector):
    """The zoomed look's keypoints and 3D points match the rendered board.

    Fails if the window's pixels are not mapped back to the whole image
    (offset or scale), or the second look is not taken.
    """
    left, right, lcam, rcam, truth = _render_board_pair()
    pipe = StereoKeypointPipeline(detector, PipelineConfig(input_rectified=False,
                                                           roi_refinement='always'))
    res = pipe.process(left, right, lcam, rcam)
    assert res.left.roi is not None and res.right.roi is not None
    x0, y0, w, h = res.left.roi
    assert w < 0.5 * 640 and 'roi_pass' in res.timings_ms  # zoomed at least 2x
    assert res.valid.all()
    err_3d = min(np.linalg.norm(res.xyz[list(p)] - truth, axis=1).max()
                 for p in [range(4)] + detector.object_class.symmetries)
    # depth noise Z^2 / (f B) = 2.9 cm per pixel of disparity error at 1.2 m
    assert err_3d < 0.04
    sym = detector.object_class.symmetries
    err_2d = [symmetric_errors(d.uv, project(cam.P, truth), sym)
              for d, cam in ((res.left, lcam), (res.right, rcam))]
    assert np.all(np.array(err_2d) < 1.5), err_2d
    # the first look alone covers the whole image, and it is coarser
    first = StereoKeypointPipeline(detector, PipelineConfig(
        input_rectified=False, roi_refinement='off')).process(left, right, lcam, rcam)
    assert first.left.roi is None and 'roi_pass' not in first.timings_ms
    err_first = symmetric_errors(first.left.uv, project(lcam.P, truth), sym)
    assert np.nanmax(err_first) > np.max(err_2d[0])
