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
"""KeypointDetector: the shipped network on batches, test-time augmentation (CPU)."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from keypoint_perception.core.checkpoint import save_checkpoint
from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.heatmaps import merge_rotated_beliefs
from keypoint_perception.core.model import BeliefMapNet, make_config
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.views import ViewKeypoints


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


def test_zoomed_look_finds_a_small_object_at_full_resolution(detector):
    """A board a quarter of the image wide is looked at again in a window around it.

    The reference is the same board filling a network-sized image (seen at
    the network's full resolution); pasted into a 4x larger canvas, the first
    look sees it at a quarter of that resolution.
    """
    small = _board_image()
    reference = detector.detect([small])[0].uv
    canvas = np.full((768, 1024, 3), 110, np.uint8)
    offset = np.array([600, 90])
    canvas[offset[1]:offset[1] + 192, offset[0]:offset[0] + 256] = small
    before = canvas.copy()
    first = detector.detect([canvas])[0]
    zoomed = detector.detect([canvas], roi_refinement='always')[0]
    assert np.array_equal(canvas, before)
    assert first.roi is None and zoomed.roi is not None
    x0, y0, width, height = zoomed.roi
    assert x0 <= offset[0] + 20 and x0 + width >= offset[0] + 236 and width < 1024 / 1.25
    assert np.isfinite(zoomed.uv).all()
    error_zoomed = np.linalg.norm(zoomed.uv - offset - reference, axis=1)
    error_first = np.linalg.norm(first.uv - offset - reference, axis=1)
    assert error_zoomed.max() < 1.5 and error_zoomed.mean() < error_first.mean()
    # 'incomplete' looks again only when a keypoint is missing: here none is
    assert detector.detect([canvas], roi_refinement='incomplete')[0].roi is None
    # an object that fills the image gains nothing from a window
    assert detector.detect([small], roi_refinement='always')[0].roi is None
    with pytest.raises(ValueError, match='roi_refinement'):
        detector.detect([small], roi_refinement='sometimes')


def test_zoomed_look_without_augmentation_runs_the_window_once(detector, monkeypatch):
    """``roi_augmentation=False``: the window goes through the network once, not twice.

    The first look keeps its rot180 pair (2 images); the zoomed look sees 1.
    Its keypoints stay within 1.5 px of the board seen at full resolution.
    """
    small = _board_image()
    reference = detector.detect([small])[0].uv
    canvas = np.full((768, 1024, 3), 110, np.uint8)
    canvas[90:282, 600:856] = small
    sizes = []
    run = detector.backend.run
    monkeypatch.setattr(detector.backend, 'run', lambda batch: sizes.append(len(batch))
                        or run(batch))
    zoomed = detector.detect([canvas], roi_refinement='always', roi_augmentation=False)[0]
    assert sizes == [2, 1] and zoomed.roi is not None
    assert np.linalg.norm(zoomed.uv - [600, 90] - reference, axis=1).max() < 1.5


def test_rot180_beliefs_turn_with_the_image(detector):
    """Check that the merged maps of a rotated image are the rotated merged maps.

    Up to the board's symmetry relabelling; this fails if the rotated look is
    not rotated back onto the right cells or not relabelled.
    """
    img = _board_image()
    assert (detector.config.input_width, detector.config.input_height) == img.shape[1::-1]
    b0, b1 = detector.infer([img, np.ascontiguousarray(img[::-1, ::-1])])
    back = b1[:, ::-1, ::-1]
    perms = detector.object_class.symmetry_group.index_arrays
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
    # the board's corner order has a handedness: no mirror permutation, no hflip
    assert oc.mirror is None
    with pytest.raises(ValueError, match='mirror permutation'):
        KeypointDetector(str(plain), test_time_augmentation='hflip')
    # a symmetric class with a mirror: the mirrored look's labelling would be ambiguous
    mirrored = tmp_path / 'mirrored.pt'
    save_checkpoint(str(mirrored), model, dataclasses.replace(oc, mirror=[1, 0, 3, 2]), meta={})
    with pytest.raises(ValueError, match='has symmetries'):
        KeypointDetector(str(mirrored), test_time_augmentation='hflip')
    assert KeypointDetector(str(mirrored), test_time_augmentation='rot180') \
        .test_time_augmentation == 'rot180'


def test_hflip_merges_the_mirrored_look_of_a_robot_model(tmp_path):
    """A robot class (identity mirror) keeps it through its checkpoint; hflip = the merge."""
    oc = load_object_class('panda')
    assert oc.mirror == list(range(7))
    torch.manual_seed(0)
    model = BeliefMapNet(make_config('lite', oc.num_keypoints))
    path = tmp_path / 'robot.pt'
    save_checkpoint(str(path), model, oc, meta={'test_time_augmentation': 'hflip'})
    det = KeypointDetector(str(path), backend='torch')
    assert det.test_time_augmentation == 'hflip' and det.object_class.mirror == list(range(7))
    img = _board_image()
    b0, b1 = det.infer([img, np.ascontiguousarray(img[:, ::-1])])
    # the mirrored image's merged maps are the merged maps mirrored
    np.testing.assert_allclose(b1[:, :, ::-1], b0, atol=1e-5)
    det.test_time_augmentation = 'none'
    p0, p1 = det.infer([img, np.ascontiguousarray(img[:, ::-1])])
    assert np.abs(p1[:, :, ::-1] - p0).max() > 1e-4   # one look alone is not equivariant
    np.testing.assert_allclose(b0, 0.5 * (p0 + p1[:, :, ::-1]), atol=1e-5)


def test_detect_finds_the_corners_of_each_image_on_its_own(detector):
    img = _board_image()
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    before = img.copy()
    found = detector.detect([img, grey])
    assert np.array_equal(img, before)  # the input is not changed
    assert all(isinstance(view, ViewKeypoints) and view.roi is None for view in found)
    assert found[0].uv.shape == (4, 2) and np.isfinite(found[0].uv).all()
    # grey and colour images of the same board give the same keypoints
    np.testing.assert_allclose(found[0].uv, found[1].uv, atol=1e-6)
    # the default peak threshold is the pipeline's
    assert PipelineConfig().peak_threshold == 0.1
    none = detector.detect([img], peak_threshold=1.0)[0]
    assert np.isnan(none.uv).all() and (none.confidence == 0).all()
    assert detector.cell_size_px(256) == detector.config.stride


@pytest.mark.parametrize('error_pct, warn', [(9.09, True), (0.61, False), (None, False)])
def test_quality_note_reports_the_recorded_validation_error(tmp_path, error_pct, warn):
    object_class = load_object_class('panda')
    path = str(tmp_path / 'model.pt')
    meta = {} if error_pct is None else {'val': {'mean_pct_diag': error_pct}}
    save_checkpoint(path, BeliefMapNet(make_config('lite', object_class.num_keypoints)),
                    object_class, meta)
    detector = KeypointDetector(path, backend='torch')
    note, warned = detector.quality_note()
    assert warned is warn
    assert detector.validation_error_pct == error_pct
    if error_pct is None:
        assert 'no validation error' in note
    else:
        assert f'{error_pct:.2f}%' in note and ('preliminary' in note) is warn


def test_shipped_board_model_is_not_reported_as_preliminary():
    detector = KeypointDetector('checkerboard_lite')
    assert detector.validation_error_pct is not None
    assert not detector.quality_note()[1]
