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
"""Zoomed training crops around the object (training.data, ``--object-crops``).

Images with a bright dot at every keypoint: in every crop the dot must sit
where the crop's keypoint says, the object must be larger than in the full
view, keypoints outside the window must lose their label, and the full views
must be the same with and without crops.
"""

import numpy as np
import pytest

from keypoint_perception.training import data
from keypoint_perception.training.data import (object_crop_window, views_and_crops,
                                               views_of_samples, ViewSet)

INPUT = (256, 192)


def _sample(rng, size=(1280, 720), num=5, spread=(160, 160)):
    w, h = size
    spread = np.asarray(spread, float)
    centre = rng.uniform(spread, (w, h) - spread)
    sample = {}
    for view in ('left', 'right'):
        uv = (centre + rng.uniform(-spread, spread, (num, 2))).astype(np.float32)
        image = np.zeros((h, w, 3), np.uint8)
        for u, v in np.round(uv).astype(int):
            image[v - 4:v + 5, u - 4:u + 5] = 255
        sample[view], sample[f'kp2d_{view}'] = image, uv
        sample[f'vis_{view}'] = np.full(num, 2, np.uint8)
    return sample


def test_crops_follow_their_keypoints_zoom_in_and_leave_the_full_views_alone(monkeypatch):
    rng = np.random.default_rng(3)
    # wide, flat objects and shifts up to half their extent: windows cut keypoints off
    monkeypatch.setattr(data, 'CROP_MAX_SHIFT', 0.5)
    samples = [_sample(rng, spread=(200, 10)) for _ in range(6)]
    plain = views_of_samples(samples, INPUT)
    full, crops = views_and_crops(samples, INPUT, 4, np.random.default_rng(0))
    views = ViewSet.concatenate([full, crops])
    n = len(plain)
    assert n == 12 and len(views) == n + 48        # every view can be zoomed here
    for field in ('images', 'uv', 'visibility', 'scale', 'diagonal'):
        assert np.array_equal(getattr(views, field)[:n], getattr(plain, field))
    dropped = 0
    for i in range(n, len(views)):
        k = (i - n) // 4                              # the view this crop was cut from
        image_uv = samples[k // 2][('kp2d_left', 'kp2d_right')[k % 2]]
        crop, uv, vis = views.images[i], views.uv[i], views.visibility[i]
        assert views.diagonal[i] == pytest.approx(np.hypot(1280, 720))
        # window pixels per input pixel: smaller than the full view's 5 (a zoom)
        assert 1.0 <= views.scale[i, 0] < plain.scale[0, 0]
        inside = ((uv >= -0.5) & (uv <= (INPUT[0] - 0.5, INPUT[1] - 0.5))).all(axis=1)
        assert np.array_equal(vis > 0, inside)
        dropped += int((~inside).sum())
        for (u, v) in uv[inside]:
            r, c = int(round(v)), int(round(u))
            patch = crop[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].max()
            assert patch > 60, (i, u, v)              # the dot is where the label says
        # the keypoints' extent in the crop is the image's over the window scale
        np.testing.assert_allclose(np.ptp(uv, axis=0) * views.scale[i],
                                   np.ptp(image_uv, axis=0), rtol=1e-4)
    assert dropped > 0                                # shifted windows do cut keypoints


@pytest.mark.parametrize('truncated_prob', [0.0, 1.0])
def test_truncated_crops_cut_the_object_and_only_they_do(monkeypatch, truncated_prob):
    monkeypatch.setattr(data, 'CROP_MAX_SHIFT', 0.0)
    monkeypatch.setattr(data, 'TRUNCATED_CROP_PROB', truncated_prob)
    rng = np.random.default_rng(7)
    samples = [_sample(rng, size=(2560, 1440), spread=(300, 150)) for _ in range(4)]
    crops = views_and_crops(samples, INPUT, 2, np.random.default_rng(2))[1]
    assert len(crops) == 16
    labelled = (crops.visibility > 0).sum(axis=1)
    if truncated_prob:
        assert labelled.max() < 5                            # every crop cuts the object
    else:
        assert labelled.min() == 5                           # centred windows keep it whole


def test_warped_views_are_black_outside_the_image_and_keypoints_follow():
    image = np.full((120, 160, 3), 200, np.uint8)
    uv = np.array([[80.0, 60.0], [150.0, 10.0]], np.float32)
    m = np.array([[0.5, 0.0, 40.0], [0.0, 0.5, 30.0]])          # shrink about the centre
    out, uv_out, vis = data.warp_view(image, uv, np.array([2, 2], np.uint8), m)
    assert out[:25, :35].max() == 0 and out[-25:, -35:].max() == 0   # no mirrored copies
    assert out[40:80, 50:110].min() == 200
    np.testing.assert_allclose(uv_out, [[80.0, 60.0], [115.0, 35.0]])
    assert vis.tolist() == [2, 2]
    shifted = np.array([[1.0, 0.0, 100.0], [0.0, 1.0, 0.0]])
    assert data.warp_view(image, uv, np.array([2, 1], np.uint8), shifted)[2].tolist() == [0, 0]


def test_augmentation_casts_a_share_of_the_colour_views_and_never_a_grey_one(monkeypatch):
    """About COLOUR_CAST_PROB of the colour views get a white-balance cast; grey ones none."""
    monkeypatch.setattr(data, 'random_affine',
                        lambda rng, size, **kw: np.float32([[1, 0, 0], [0, 1, 0]]))
    calls = []

    def warm(rng):
        calls.append(1)
        return np.array([1.5, 1.0, 0.67])
    monkeypatch.setattr(data, 'white_balance_gains', warm)
    image = np.full((48, 64, 3), 100, np.uint8)
    uv, vis = np.float32([[10, 10], [40, 30]]), np.uint8([2, 2])
    n, warm_views = 400, 0
    for seed in range(n):
        before = len(calls)
        out, uv_out, _ = data.augment_view(image, uv, vis, np.random.default_rng(seed))
        np.testing.assert_array_equal(uv_out, uv)
        r, _, b = out[8:40, 8:56].reshape(-1, 3).astype(np.float64).mean(axis=0)
        if len(calls) > before:
            warm_views += r > 1.2 * b + 1.0   # the cast survives brightness and gamma
    expected = (1 - data.GREY_PROB) * data.COLOUR_CAST_PROB
    assert len(calls) / n == pytest.approx(expected, abs=0.07)
    assert warm_views == len(calls)
    monkeypatch.setattr(data, 'GREY_PROB', 1.0)
    calls.clear()
    for seed in range(50):
        data.augment_view(image, uv, vis, np.random.default_rng(seed))
    assert not calls


def test_no_crop_without_two_labelled_keypoints_or_when_it_would_not_zoom():
    rng = np.random.default_rng(1)
    sample = _sample(rng)
    sample['vis_left'][1:] = 0                        # one labelled keypoint
    big = _sample(rng, size=(320, 240), spread=(100, 100))   # object fills a small image
    full, crops = views_and_crops([sample, big], INPUT, 1, np.random.default_rng(0))
    assert len(full) == 4 and len(crops) == 1         # only the right view of `sample`
    assert views_and_crops([big], INPUT, 1, np.random.default_rng(0))[1] is None
    uv = np.array([[10.0, 10.0], [300.0, 230.0]], np.float32)
    assert object_crop_window(uv, np.array([2, 2]), (320, 240), INPUT,
                              np.random.default_rng(0)) is None


def test_crops_are_reproducible_and_need_a_generator():
    rng = np.random.default_rng(5)
    samples = [_sample(rng) for _ in range(2)]
    a = views_and_crops(samples, INPUT, 1, np.random.default_rng(9))[1]
    b = views_and_crops(samples, INPUT, 1, np.random.default_rng(9))[1]
    assert np.array_equal(a.images, b.images) and np.array_equal(a.uv, b.uv)
    with pytest.raises(ValueError, match='rng'):
        views_and_crops(samples, INPUT, 1, None)


def test_stream_training_refuses_object_crops_instead_of_ignoring_them(tmp_path, capsys):
    from keypoint_perception.training.train import main
    try:
        code = main(['--stream', '--object-crops', '1', '--out', str(tmp_path)])
    except SystemExit as exit_:
        code = exit_.code
    assert code not in (0, None)
    assert '--object-crops: shard training only' in capsys.readouterr().err
    assert not any(tmp_path.iterdir())                # nothing started
