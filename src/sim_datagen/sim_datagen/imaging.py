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
"""

from __future__ import annotations

from typing import Dict, Optional

import cv2
import numpy as np

from .optics import LensRemap, SampleCameras
from .scene import textures
from .scene.layout import BuiltScene
from .scene.support_plane import Render
from .variables import ImagingVariables, SceneVariables

#: seed of the fixed N(0, 1) noise bank the sensor noise is cropped from
NOISE_BANK_SEED = 4242


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
        self._noise: Optional[np.ndarray] = None

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
        wb = rng.uniform(0.85, 1.15, 3)
        mb_angle = rng.uniform(0, 180)
        out = {}
        for n, (rgb, _, seg) in renders.items():
            shift = 0 if n == 'left' else 1
            img = np.ascontiguousarray(bg[:, d_bg * shift:d_bg * shift + W])
            if person is not None:
                o = person[2] * shift
                cv2.copyTo(np.ascontiguousarray(person[0][:, o:o + W]),
                           np.ascontiguousarray(person[1][:, o:o + W]), img)
            cv2.copyTo(np.ascontiguousarray(rgb), (seg >= 0).astype(np.uint8), img)
            img = self.camera_effects(img, imaging, wb * rng.uniform(0.97, 1.03, 3), mb_angle)
            img = lens.apply(img, cameras, cv2.INTER_LINEAR)
            out[n] = self.sensor(img, imaging, rng)
        return out

    def camera_effects(self, img: np.ndarray, imaging: ImagingVariables, white_balance,
                       motion_blur_angle: float) -> np.ndarray:
        """Apply the camera response; uint8 (H, W, 3) in, a new image out.

        Exposure (with partial auto-exposure), white balance (3 gains),
        vignetting, contrast and gamma (one LUT), Gaussian and motion blur
        (``motion_blur_angle`` in degrees).
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
        length = imaging.motion_blur
        if length > 1.5:
            k = np.zeros((int(np.ceil(length)) | 1, int(np.ceil(length)) | 1), np.float32)
            c = k.shape[0] // 2
            k[c, :] = 1
            k = cv2.warpAffine(k, cv2.getRotationMatrix2D((c, c), motion_blur_angle, 1.0),
                               k.shape)
            img = cv2.filter2D(img, -1, k / max(k.sum(), 1e-6))
        return img

    def _noise_bank(self) -> np.ndarray:
        """(H + 64, W + 64, 3) float32 N(0, 1) samples, fixed (seed :data:`NOISE_BANK_SEED`)."""
        if self._noise is None:
            g = np.random.default_rng(NOISE_BANK_SEED)
            self._noise = g.standard_normal((self.height + 64, self.width + 64, 3),
                                            dtype=np.float32)
        return self._noise

    def sensor(self, img: np.ndarray, imaging: ImagingVariables,
               rng: np.random.Generator) -> np.ndarray:
        """Apply sensor effects; uint8 (H, W, 3) in, a new image out.

        Grayscale (replicated to 3 channels), additive noise (random crop of a
        fixed N(0, 1) bank), JPEG re-compression.
        """
        gray = imaging.grayscale == 1
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if imaging.noise_sigma > 0.2:
            oy, ox = int(rng.integers(0, 64)), int(rng.integers(0, 64))
            noise = self._noise_bank()[oy:oy + self.height, ox:ox + self.width]
            noise = noise[:, :, 0] if gray else noise
            img = cv2.add(img, noise * np.float32(imaging.noise_sigma), dtype=cv2.CV_8U)
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY,
                                             int(imaging.jpeg_quality)])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img.ndim == 2:
            img = cv2.merge([img, img, img])
        return img
