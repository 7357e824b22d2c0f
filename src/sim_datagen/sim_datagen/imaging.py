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
"""Imaging: background and person compositing, camera response, sensor effects.

Turns the two pinhole renders of a sample into the output images: a
background canvas (shifted by its stereo disparity in the right view), an
optional person silhouette, the rendered bodies on top, the camera
response (exposure, white balance, vignetting, contrast, gamma, blur), lens
distortion (:class:`~sim_datagen.optics.LensRemap`) and sensor effects
(grey, noise, JPEG).  Images are (H, W, 3) uint8 RGB.

Three nuisance draws are not scene variables (no bins, no feedback): the
white-balance error
(:func:`keypoint_perception.core.camera_response.white_balance_gains`),
whether motion blur smears the whole image (a moving camera) or only the
object and what it carries (a moving robot in front of a static camera,
:data:`OBJECT_MOTION_BLUR_PROB`), and the sensor's noise level function
(:func:`noise_level_lut`, :data:`CORRELATED_NOISE_PROB`).
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
from keypoint_perception.core.camera_response import white_balance_gains
import numpy as np

from .optics import LensRemap, SampleCameras
from .scene import textures
from .scene.layout import BuiltScene
from .scene.support_plane import Render
from .variables import ImagingVariables, SceneVariables

#: seed of the fixed N(0, 1) noise bank the sensor noise is cropped from
NOISE_BANK_SEED = 4242
#: share of the motion-blurred samples in which only the object (and its
#: payloads, tools, cables) moves; the rest blur the whole image
OBJECT_MOTION_BLUR_PROB = 0.5
#: share of the noisy samples whose noise is spatially correlated (demosaicing
#: and in-camera denoising spread it over about 2 px)
CORRELATED_NOISE_PROB = 0.5
#: Gaussian sigma, px, of the correlated noise bank
CORRELATED_NOISE_SIGMA = 0.8
#: display gamma of the noise level function's camera response
NOISE_GAMMA = 2.2
#: largest noise std of the darkest pixels, as a multiple of mid-grey's
NOISE_DARK_MAX = 3.0


def motion_blur_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Return a normalized linear motion-blur kernel centred on its middle pixel.

    Args:
        length: length of the streak, px (> 1.5 to blur at all).
        angle_deg: direction, degrees, counter-clockwise from the image's +u axis.

    Returns:
        (k, k) float32, k odd, sums to 1; centred, so labels do not move.
    """
    k = np.zeros((int(np.ceil(length)) | 1, int(np.ceil(length)) | 1), np.float32)
    c = k.shape[0] // 2
    k[c, :] = 1
    k = cv2.warpAffine(k, cv2.getRotationMatrix2D((c, c), angle_deg, 1.0), k.shape)
    return k / max(float(k.sum()), 1e-6)


def noise_level_lut(shot_fraction: float, gamma: float = NOISE_GAMMA) -> np.ndarray:
    """Noise std per 8-bit grey level, relative to mid-grey's, of a raw sensor seen through gamma.

    The raw signal ``L`` in 0 .. 1 has the Poissonian-Gaussian variance
    ``a L + b`` (Foi et al., "Practical Poissonian-Gaussian noise modeling
    and fitting for single-image raw-data", IEEE TIP 2008), written here as
    ``shot_fraction * L + (1 - shot_fraction) * L_mid`` so that mid-grey
    keeps the sample's ``noise_sigma``.  The camera's response ``x =
    L ** (1 / gamma)`` maps a raw std to an image std by its slope
    ``dx/dL``, which gives the brightness-dependent noise level function of
    8-bit images (Liu et al., "Automatic estimation and removal of noise
    from a single image", IEEE TPAMI 2008): pure shot noise is almost flat
    in the image, read noise grows in the shadows (capped at
    :data:`NOISE_DARK_MAX`).

    Args:
        shot_fraction: share of mid-grey's raw variance that is shot noise, 0 .. 1.
        gamma: the response's gamma (> 1).

    Returns:
        (256,) float32 std multipliers, 1 at grey level 128.

    Raises:
        ValueError: ``shot_fraction`` outside 0 .. 1 or ``gamma`` <= 1.
    """
    if not 0.0 <= shot_fraction <= 1.0 or gamma <= 1.0:
        raise ValueError(f'shot_fraction {shot_fraction} must be in [0, 1] and gamma '
                         f'{gamma} > 1')

    def level(x):
        raw = np.asarray(x, np.float64) ** gamma
        slope = raw ** (1.0 / gamma - 1.0) / gamma
        return slope * np.sqrt(shot_fraction * raw + (1.0 - shot_fraction) * 0.5 ** gamma)

    x = (np.arange(256) + 0.5) / 256.0
    return np.minimum(level(x) / level(128.5 / 256.0), NOISE_DARK_MAX).astype(np.float32)


def composite_moving(img: np.ndarray, rgb: np.ndarray, seg: np.ndarray, moving: np.ndarray,
                     front_ids, kernel: np.ndarray) -> np.ndarray:
    """Composite a render over a background with only the moving bodies motion-blurred.

    Layers, back to front: ``img`` (background, person), the static bodies,
    the moving bodies smeared by ``kernel`` (colour and coverage alike, so
    their edges blend into what is behind them), and the bodies of
    ``front_ids`` (occluders placed in front of the object) sharp on top.

    Args:
        img: (H, W, 3) uint8 background.
        rgb: (H, W, 3) uint8 render of the bodies.
        seg: (H, W) int body id per pixel, < 0 for none.
        moving: (M,) int body ids that move (the object and what it carries).
        front_ids: body ids drawn sharp on top.
        kernel: (k, k) float32 normalized motion kernel (:func:`motion_blur_kernel`).

    Returns:
        (H, W, 3) uint8, a new image; ``img`` is not changed.
    """
    is_moving = np.isin(seg, moving)
    out = img.copy()
    cv2.copyTo(rgb, ((seg >= 0) & ~is_moving).astype(np.uint8), out)
    alpha = cv2.filter2D(is_moving.astype(np.float32), -1, kernel)[:, :, None]
    layer = cv2.filter2D(rgb.astype(np.float32) * is_moving[:, :, None], -1, kernel)
    out = np.clip(layer + (1.0 - alpha) * out + 0.5, 0, 255).astype(np.uint8)
    if len(front_ids):
        cv2.copyTo(rgb, np.isin(seg, np.asarray(front_ids)).astype(np.uint8), out)
    return out


class CameraImaging:
    """Compositing, camera response and sensor effects for one image size.

    Holds per-size caches (the vignetting radius map, the noise bank),
    nothing per sample.

    Args:
        width: image width, px.
        height: image height, px.
        pad: extra background width, px (the largest background disparity).
        texture_library: textures of the ``texture`` background kind.
    """

    def __init__(self, width: int, height: int, pad: int,
                 texture_library: textures.TextureLibrary):
        self.width, self.height, self.pad = int(width), int(height), int(pad)
        self.texture_library = texture_library
        self._radius2: Optional[np.ndarray] = None
        self._noise: Dict[bool, np.ndarray] = {}

    def compose(self, rng: np.random.Generator, variables: SceneVariables,
                cameras: SampleCameras, renders: Dict[str, Render], scene: BuiltScene,
                lens: LensRemap) -> Dict[str, np.ndarray]:
        """Background + person compositing, camera effects and sensor for both views.

        The background canvas is ``pad`` px wider than the image; the right
        view takes it shifted by the disparity ``fx * baseline / depth``
        (``fx`` of the renders).

        Returns:
            ``{'left': image, 'right': image}``, (H, W, 3) uint8 RGB.
        """
        W, H, pad = self.width, self.height, self.pad
        background, imaging = variables.background, variables.imaging
        fx, b = cameras.K_render[0, 0], variables.rig.baseline
        u_c, v_c = scene.centre_uv
        bg = textures.make_background(background.background_type, rng, H, W + pad,
                                      self.texture_library)
        d_bg = int(min(pad, round(fx * b / background.background_depth)))
        person = None
        if background.person == 1:
            zp = scene.depth + rng.uniform(0.1, 0.6)
            pc = (u_c + rng.uniform(-0.3, 0.3) * W, v_c + rng.uniform(-0.1, 0.4) * H)
            h2, w2 = H // 2, (W + pad) // 2
            prgb, palpha = textures.person_layer(rng, h2, w2, (pc[0] / 2, pc[1] / 2),
                                                 fx * rng.uniform(0.35, 0.5) / zp / 2)
            prgb = cv2.resize(np.clip(prgb, 0, 255).astype(np.uint8), (W + pad, H))
            pmask = cv2.resize((palpha > 0.5).astype(np.uint8), (W + pad, H),
                               interpolation=cv2.INTER_NEAREST)
            person = (prgb, pmask, int(min(pad, round(fx * b / zp))))
        # per-sample camera response, small per-view differences
        wb = white_balance_gains(rng)
        kernel = None
        if imaging.motion_blur > 1.5:
            kernel = motion_blur_kernel(imaging.motion_blur, rng.uniform(0, 180))
        moving = None
        if kernel is not None and rng.random() < OBJECT_MOTION_BLUR_PROB:
            moving = np.array(sorted(set(scene.object_ids) | set(scene.attachment_ids)))
        out = {}
        for n, (rgb, _, seg) in renders.items():
            shift = 0 if n == 'left' else 1
            img = np.ascontiguousarray(bg[:, d_bg * shift:d_bg * shift + W])
            if person is not None:
                o = person[2] * shift
                cv2.copyTo(np.ascontiguousarray(person[0][:, o:o + W]),
                           np.ascontiguousarray(person[1][:, o:o + W]), img)
            rgb = np.ascontiguousarray(rgb)
            if moving is None:
                cv2.copyTo(rgb, (seg >= 0).astype(np.uint8), img)
            else:
                img = composite_moving(img, rgb, seg, moving, scene.occluder_ids, kernel)
            img = self.camera_effects(img, imaging, wb * rng.uniform(0.97, 1.03, 3),
                                      kernel if moving is None else None)
            img = lens.apply(img, cameras, cv2.INTER_LINEAR)
            out[n] = self.sensor(img, imaging, rng)
        return out

    def camera_effects(self, img: np.ndarray, imaging: ImagingVariables, white_balance,
                       motion_kernel: Optional[np.ndarray]) -> np.ndarray:
        """Apply the camera response; uint8 (H, W, 3) in, a new image out.

        Exposure (with partial auto-exposure), white balance (3 gains),
        vignetting, contrast and gamma (one LUT), Gaussian blur, and motion
        blur of the whole image with ``motion_kernel`` (see
        :func:`motion_blur_kernel`; None for none).
        """
        mean = float(img[::4, ::4].mean()) + 1.0
        gain = imaging.exposure * (110.0 / mean) ** 0.7
        if imaging.vignetting > 0.01:
            if self._radius2 is None:
                yy, xx = np.mgrid[0:self.height, 0:self.width].astype(np.float32)
                self._radius2 = (((xx - self.width / 2) ** 2 + (yy - self.height / 2) ** 2)
                                 / ((self.width / 2) ** 2 + (self.height / 2) ** 2))
            vm = (1.0 - imaging.vignetting) + imaging.vignetting * (1.0 - self._radius2)
            img = cv2.multiply(img, cv2.merge([vm, vm, vm]), dtype=cv2.CV_8U)
            gain /= 1.0 - 0.5 * imaging.vignetting
        x = np.arange(256, dtype=np.float64)
        m = mean * gain
        lut = np.empty((256, 3))
        for c in range(3):
            y = (x * gain * white_balance[c] - m) * imaging.contrast + m
            lut[:, c] = 255.0 * (np.clip(y, 0, 255) / 255.0) ** (1.0 / imaging.gamma)
        img = cv2.LUT(img, np.clip(np.rint(lut), 0, 255).astype(np.uint8).reshape(1, 256, 3))
        if imaging.blur_sigma > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), imaging.blur_sigma)
        if motion_kernel is not None:
            img = cv2.filter2D(img, -1, motion_kernel)
        return img

    def _noise_bank(self, correlated: bool = False) -> np.ndarray:
        """(H + 64, W + 64, 3) float32 unit-variance noise, fixed (seed :data:`NOISE_BANK_SEED`).

        ``correlated`` low-passes it (:data:`CORRELATED_NOISE_SIGMA`) and
        rescales it to unit variance again.
        """
        if correlated not in self._noise:
            g = np.random.default_rng(NOISE_BANK_SEED)
            bank = g.standard_normal((self.height + 64, self.width + 64, 3), dtype=np.float32)
            if correlated:
                bank = cv2.GaussianBlur(bank, (0, 0), CORRELATED_NOISE_SIGMA)
                bank /= bank.std(axis=(0, 1), keepdims=True)
            self._noise[correlated] = bank
        return self._noise[correlated]

    def sensor(self, img: np.ndarray, imaging: ImagingVariables,
               rng: np.random.Generator) -> np.ndarray:
        """Apply sensor effects; uint8 (H, W, 3) in, a new image out.

        Grayscale (replicated to 3 channels), additive noise (random crop of a
        fixed unit-variance bank, white or spatially correlated, scaled per
        pixel by the noise level function :func:`noise_level_lut` of a
        random shot-noise share, ``noise_sigma`` grey levels at mid-grey),
        JPEG re-compression.
        """
        gray = imaging.grayscale == 1
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if imaging.noise_sigma > 0.2:
            correlated = bool(rng.random() < CORRELATED_NOISE_PROB)
            std = noise_level_lut(rng.uniform(0.3, 1.0)) * np.float32(imaging.noise_sigma)
            oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
            noise = self._noise_bank(correlated)[oy:oy + self.height, ox:ox + self.width]
            noise = noise[:, :, 0] if gray else noise
            img = cv2.add(img, noise * std[img], dtype=cv2.CV_8U)
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY,
                                             int(imaging.jpeg_quality)])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img.ndim == 2:
            img = cv2.merge([img, img, img])
        return img
