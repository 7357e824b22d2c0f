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
"""Camera response and sensor model: white balance, motion blur layers, noise level function."""

from keypoint_perception.core.camera_response import white_balance_gains
import numpy as np
import pytest
from sim_datagen import imaging
from sim_datagen.scene.textures import TextureLibrary
from sim_datagen.variables import ImagingVariables


def _imaging_variables(**changes):
    values = dict(exposure=1.0, contrast=1.0, gamma=1.0, vignetting=0.0, blur_sigma=0.0,
                  motion_blur=0.0, noise_sigma=0.0, jpeg_quality=100, grayscale=0)
    values.update(changes)
    return ImagingVariables(**values)


def test_noise_level_is_flat_for_shot_noise_and_grows_in_the_shadows_for_read_noise():
    shot = imaging.noise_level_lut(1.0)
    read = imaging.noise_level_lut(0.3)
    assert shot[128] == pytest.approx(1.0, abs=1e-3) and read[128] == pytest.approx(1.0, abs=1e-3)
    # pure shot noise through gamma 2.2: std ~ x ** (1 - 2.2 / 2) = x ** -0.1, nearly flat
    x = (np.arange(30, 256) + 0.5) / 256
    assert shot[30:] == pytest.approx(x ** -0.1 / (128.5 / 256) ** -0.1, rel=1e-4)
    # read noise: dark pixels noisier than bright ones, capped
    assert read[20] > 1.5 > 1.0 > read[240]
    assert read.max() == pytest.approx(imaging.NOISE_DARK_MAX)
    assert np.all(np.diff(read) <= 1e-6)  # falls with brightness
    with pytest.raises(ValueError, match='shot_fraction'):
        imaging.noise_level_lut(1.5)


def test_white_balance_error_moves_red_and_blue_in_opposite_directions():
    rng = np.random.default_rng(0)
    gains = np.array([white_balance_gains(rng) for _ in range(2000)])
    assert gains.min() > 0.6 and gains.max() < 1.6
    assert np.all(np.abs(np.log(gains[:, 1])) <= 0.05 + 1e-9)
    assert np.corrcoef(np.log(gains[:, 0]), np.log(gains[:, 2]))[0, 1] < -0.9
    # strong casts happen: a red/blue ratio beyond 1.8 either way in a tenth of the draws
    ratio = gains[:, 0] / gains[:, 2]
    assert np.mean(ratio > 1.8) > 0.1 and np.mean(ratio < 1 / 1.8) > 0.1


@pytest.mark.parametrize('angle, axis', [(0.0, 0), (90.0, 1)])
def test_motion_blur_kernel_is_a_centred_normalized_streak(angle, axis):
    k = imaging.motion_blur_kernel(6.2, angle)
    assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0, abs=1e-5)
    yy, xx = np.mgrid[0:7, 0:7]
    assert (k * xx).sum() == pytest.approx(3.0, abs=1e-4)
    assert (k * yy).sum() == pytest.approx(3.0, abs=1e-4)
    # the streak runs along u for 0 degrees, along v for 90
    spread = k.sum(axis=axis)
    assert np.count_nonzero(spread > 1e-3) == 7
    assert np.count_nonzero(k.sum(axis=1 - axis) > 1e-3) <= 2


def test_only_the_moving_bodies_are_smeared_and_occluders_stay_sharp():
    h, w = 40, 60
    background = np.full((h, w, 3), 20, np.uint8)
    rgb = np.zeros((h, w, 3), np.uint8)
    seg = np.full((h, w), -1, np.int32)
    seg[10:30, 20:30], rgb[10:30, 20:30] = 5, 200      # the robot (moving)
    seg[10:30, 40:50], rgb[10:30, 40:50] = 7, 120      # a table (static)
    seg[18:22, 22:26], rgb[18:22, 22:26] = 9, 60       # a hand in front of the robot
    before = background.copy()
    out = imaging.composite_moving(background, rgb, seg, np.array([5]), (9,),
                                   imaging.motion_blur_kernel(9, 0.0))
    assert np.array_equal(background, before)
    # the static table is drawn sharp, the occluder sharp on top of the smear
    assert np.all(out[10:30, 40:50] == 120) and np.all(out[18:22, 22:26] == 60)
    # the robot's colour is smeared along u over the background beside it ...
    assert 20 < out[15, 17, 0] < 200 and 20 < out[15, 32, 0] < 200
    # ... not along v, and its interior away from the edges keeps its colour
    assert np.all(out[5, 20:30] == 20) and np.all(out[12, 25:26] == 200)
    assert np.all(out[:, :10] == 20)


def test_sensor_noise_follows_the_level_function_and_keeps_mid_grey_sigma():
    h, w = 120, 160
    cam = imaging.CameraImaging(w, h, 0, TextureLibrary([]))
    img = np.full((h, w, 3), 128, np.uint8)
    img[:, w // 2:] = 25
    stds = {'mid': [], 'dark': []}
    for seed in range(8):
        # grey: JPEG's 4:2:0 chroma subsampling would average colour noise away
        noisy = cam.sensor(img, _imaging_variables(noise_sigma=6.0, grayscale=1),
                           np.random.default_rng(seed))
        diff = noisy.astype(np.float64) - img
        stds['mid'].append(diff[:, :w // 2].std())
        stds['dark'].append(diff[:, w // 2:].std())
    assert np.mean(stds['mid']) == pytest.approx(6.0, rel=0.1)
    assert np.mean(stds['dark']) > 1.1 * np.mean(stds['mid'])
    # a correlated bank is still unit variance per channel, but neighbours agree
    bank = cam._noise_bank(correlated=True)
    assert bank.std(axis=(0, 1)) == pytest.approx(np.ones(3), abs=1e-3)
    corr = np.corrcoef(bank[:, :-1, 0].ravel(), bank[:, 1:, 0].ravel())[0, 1]
    white = cam._noise_bank(correlated=False)
    corr_white = np.corrcoef(white[:, :-1, 0].ravel(), white[:, 1:, 0].ravel())[0, 1]
    assert corr > 0.3 and abs(corr_white) < 0.05
