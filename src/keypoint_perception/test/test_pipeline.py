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
"""StereoKeypointPipeline: the staged chain on rendered stereo pairs with the shipped network."""

import copy

import cv2
import numpy as np
import pytest

from keypoint_perception.core import pipeline as pipeline_module
from keypoint_perception.core import template_stages
from keypoint_perception.core.camera import CameraModel, project
from keypoint_perception.core.config import PipelineConfig
from keypoint_perception.core.detector import KeypointDetector
from keypoint_perception.core.objects import load_object_class
from keypoint_perception.core.pipeline import StereoKeypointPipeline
from keypoint_perception.training.metrics import symmetric_errors


@pytest.fixture(scope='module')
def detector():
    return KeypointDetector('checkerboard_lite', test_time_augmentation='rot180')


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
                 for p in detector.object_class.symmetry_group.permutations)
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


def test_second_look_without_augmentation_runs_the_network_once_per_view(detector, monkeypatch):
    """``roi_augmentation`` false: the first look sees 4 views (rot180), the second 2.

    The zoomed look without the augmentation still finds the far board to
    1.5 px in both views.  Fails if the flag is ignored (a second batch of
    4) or drops the second look (no second batch).
    """
    left, right, lcam, rcam, truth = _render_board_pair()
    sizes = []
    run = detector.backend.run
    monkeypatch.setattr(detector.backend, 'run', lambda batch: sizes.append(len(batch))
                        or run(batch))
    res = StereoKeypointPipeline(detector, PipelineConfig(
        input_rectified=False, roi_refinement='always', roi_augmentation=False)).process(
            left, right, lcam, rcam)
    assert sizes == [4, 2]
    assert res.left.roi is not None and res.valid.all()
    sym = detector.object_class.symmetries
    for view, cam in ((res.left, lcam), (res.right, rcam)):
        assert np.all(symmetric_errors(view.uv, project(cam.P, truth), sym) < 1.5)


def test_batched_pairs_give_each_pair_its_own_result(detector, monkeypatch):
    """process_batch: two network batches for three pairs, the results of process one by one.

    Pairs: a near board that fills the view (no second look), a far one (a
    second look) and the far one with a corner painted over in the right
    view (a second look, completion).  Fails if a pair's maps, windows or
    cameras are mixed up with another's in the batch, or if the second
    looks are not batched.
    """
    near = _render_board_pair(depth=0.35, tilt_deg=10.0)
    far = _render_board_pair()
    corner = project(far[3].P, far[4])[0]
    x, y = int(corner[0]), int(corner[1])
    occluded = far[1].copy()
    occluded[y - 20:y + 20, x - 20:x + 20] = 128
    pairs = [near[:2], far[:2], (far[0], occluded)]
    cameras = [near[2:4], far[2:4], far[2:4]]
    pipe = StereoKeypointPipeline(detector, PipelineConfig(input_rectified=False,
                                                           roi_refinement='always'))
    alone = [pipe.process(*images, *rig) for images, rig in zip(pairs, cameras)]
    sizes = []
    run = detector.backend.run
    monkeypatch.setattr(detector.backend, 'run', lambda batch: sizes.append(len(batch))
                        or run(batch))
    batched = pipe.process_batch(pairs, cameras)
    # rot180: 3 pairs x 2 views x 2 looks, then the two far pairs' windows
    assert sizes == [12, 8]
    assert [r.left.roi is None for r in batched] == [True, False, False]
    for one, many in zip(alone, batched):
        np.testing.assert_array_equal(one.valid, many.valid)
        for a, b in ((one.left, many.left), (one.right, many.right)):
            np.testing.assert_allclose(a.uv, b.uv, atol=0.01)
        np.testing.assert_allclose(one.xyz, many.xyz, atol=1e-4)
        assert set(many.timings_ms) == set(one.timings_ms)
    assert batched[0].valid.all() and batched[1].valid.all()
    with pytest.raises(ValueError, match='3 stereo pairs but 2 camera pairs'):
        pipe.process_batch(pairs, cameras[:2])
    assert pipe.process_batch([], []) == []


def test_second_look_windows_follow_roi_refinement(detector):
    """Second-look windows as roi_refinement says, where the zoom is worth it.

    The far board gets windows with 'always', with 'incomplete' only once a
    corner is missing, never with 'off'; the near board that fills the view
    never.
    """
    far = _render_board_pair()
    near = _render_board_pair(depth=0.35, tilt_deg=10.0)
    corner = project(far[3].P, far[4])[0]
    x, y = int(corner[0]), int(corner[1])
    occluded = far[1].copy()
    occluded[y - 20:y + 20, x - 20:x + 20] = 128

    def windows(mode, images, rig):
        pipe = StereoKeypointPipeline(detector, PipelineConfig(input_rectified=False,
                                                               roi_refinement=mode))
        # the first look without completion: the painted-over corner stays out of 3D
        first = StereoKeypointPipeline(detector, PipelineConfig(
            input_rectified=False, roi_refinement='off', template_completion=False)).process(
                *images, *rig)
        return pipe.second_look_windows(first, images, rig), int(first.valid.sum())
    assert windows('always', far[:2], far[2:4]) == (ANY_WINDOWS, 4)
    assert windows('incomplete', far[:2], far[2:4]) == (None, 4)
    assert windows('incomplete', (far[0], occluded), far[2:4]) == (ANY_WINDOWS, 3)
    assert windows('off', (far[0], occluded), far[2:4]) == (None, 3)
    assert windows('always', near[:2], near[2:4]) == (None, 4)


class _AnyWindows:
    """Equal to any (left, right) pair of windows, not to None."""

    def __eq__(self, other):
        return other is not None and len(other) == 2


ANY_WINDOWS = _AnyWindows()


#: The stages StereoKeypointPipeline.process chains (process_batch's observe_pairs, then
#: look's stages), by their names in the pipeline module.
STAGES = ('observe_pairs', 'decode_view', 'select_across_views', 'triangulate_pair',
          'verify_against_template', 'complete_from_fit')


def _arrays(value, path='arg'):
    """Yield (path, array) of every numpy array inside a value (dataclasses, tuples, dicts)."""
    if isinstance(value, np.ndarray):
        yield path, value
    elif hasattr(value, '__dataclass_fields__'):
        for name in value.__dataclass_fields__:
            yield from _arrays(getattr(value, name), f'{path}.{name}')
    elif isinstance(value, (tuple, list)):
        for n, item in enumerate(value):
            yield from _arrays(item, f'{path}[{n}]')
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _arrays(item, f'{path}[{key!r}]')


def test_stages_return_new_values_and_change_nothing_they_are_given(detector, monkeypatch):
    """Every stage's arguments hold the same numbers after the call, on pairs that need all.

    The whole board exercises the leave-one-out check (four 3D points); with
    a corner painted over in the right view, the complete stage runs.  This
    fails if a stage writes into its inputs, as the template checks once
    did (left.uv, right.uv and the confidence in place).
    """
    left, right, lcam, rcam, truth = _render_board_pair()
    corner = project(rcam.P, truth)[0]
    x, y = int(corner[0]), int(corner[1])
    occluded = right.copy()
    occluded[y - 20:y + 20, x - 20:x + 20] = 128
    calls = []

    def checked(name, stage):
        def run(*args, **kwargs):
            before = copy.deepcopy((args, kwargs))
            out = stage(*args, **kwargs)
            for (path, old), (_, new) in zip(_arrays(before), _arrays((args, kwargs))):
                assert np.array_equal(old, new, equal_nan=True), f'{name} changed {path}'
            calls.append(name)
            return out
        return run

    for name in STAGES:
        monkeypatch.setattr(pipeline_module, name, checked(name, getattr(pipeline_module, name)))
    monkeypatch.setattr(template_stages, 'reject_template_outlier', checked(
        'reject_template_outlier', template_stages.reject_template_outlier))
    pipeline = StereoKeypointPipeline(detector, PipelineConfig(roi_refinement='off'))
    whole = pipeline.process(left, right, lcam, rcam)
    assert whole.valid.all()
    partial = pipeline.process(left, occluded, lcam, rcam)
    assert partial.valid.sum() == 3 and partial.pose is not None
    assert set(calls) >= set(STAGES) | {'reject_template_outlier'}, calls
    with pytest.raises(AttributeError):
        partial.valid = None  # results are frozen
