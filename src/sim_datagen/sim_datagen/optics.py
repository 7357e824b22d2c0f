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
"""The cameras of one sample and the lens distortion of its images and labels.

A sample's stereo rig is rectified (identical ``K``, right camera at
``+baseline`` along the left optical frame's x axis).  With radial lens
distortion (plumb_bob k1, k2) the scene is rendered by a pinhole rig of
intrinsics ``K_render`` (a wider field of view) and each view is then
resampled into the distorted camera ``(K, D)``; labels are the distorted
projections of the 3D keypoints.

The lens model is the core's (:mod:`keypoint_perception.core.distortion`,
ROS ``image_geometry`` / OpenCV): images, labels and inference use the same
functions, so they cannot disagree.

Frames: the world frame is the left camera's optical frame (+x right, +y
down, +z forward, metres).  Pixels follow OpenCV (pixel centres at integer
coordinates).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import cv2
from keypoint_perception.core.camera import CameraModel
from keypoint_perception.core.distortion import undistort_pixels
import numpy as np

from .scene.camera import StereoRig
from .variables import RigVariables


def lens_camera(K: np.ndarray, distortion: Optional[Sequence[float]], width: int, height: int,
                baseline_offset: float = 0.0) -> CameraModel:
    """Return the core camera model of one output view (what its CameraInfo says).

    Args:
        K: (3, 3) intrinsics of the output image, px.
        distortion: plumb_bob ``[k1, k2]`` (k3, p1, p2 are 0), or None.
        width: image width, px.
        height: image height, px.
        baseline_offset: ``P[0, 3]`` of the rectified projection, px m
            (``-fx * baseline`` for the right view, 0 for the left).

    Returns:
        A :class:`keypoint_perception.core.camera.CameraModel` with ``R = I``
        and ``P = [K | (baseline_offset, 0, 0)]``.
    """
    D = [0.0] * 5 if distortion is None else [float(x) for x in distortion] + [0.0, 0.0, 0.0]
    P = np.c_[K, [baseline_offset, 0.0, 0.0]]
    return CameraModel(width, height, K, D[:5], 'plumb_bob', np.eye(3), P)


def focal_from_hfov(hfov_deg: float, width: int) -> float:
    """Focal length (px) of a pinhole camera with a horizontal field of view.

    ``fx = (W / 2) / tan(hfov / 2)``: the pinhole model with the image
    spanning ``W`` px (pixel edges ``-0.5 .. W - 0.5``) and the principal
    point in the middle (e.g. Hartley & Zisserman, *Multiple View Geometry*,
    sec. 6.1).

    Args:
        hfov_deg: horizontal field of view, degrees, in (0, 180).
        width: image width, px.

    Returns:
        ``fx`` in px (float).

    Raises:
        ValueError: ``hfov_deg`` outside (0, 180).
    """
    if not 0.0 < hfov_deg < 180.0:
        raise ValueError(f'hfov must be in (0, 180) degrees, got {hfov_deg}')
    return (width / 2.0) / float(np.tan(np.radians(hfov_deg) / 2.0))


def render_intrinsics(camera: CameraModel) -> np.ndarray:
    """Pinhole intrinsics for rendering an image that is then distorted into ``camera``.

    Barrel distortion (k1 < 0) makes the distorted image see a wider field of
    view than the pinhole ``K``; the render uses ``K_render`` = ``K`` with the
    focal lengths scaled down (to 99.5 % of the largest scale that fits) so
    that every border pixel of the distorted image, undistorted with the
    core's lens model, maps inside the render, and so the whole image (the
    lens model is monotonic in the radius: a ray inside the border maps
    inside the border's image).  The extreme of an edge need not lie at a
    corner or the edge's centre: with strong barrel distortion the edge's
    undistorted image bulges out between them.

    Returns:
        (3, 3) float64 ``K_render``.
    """
    K, w, h = camera.K, camera.width, camera.height
    xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
    border = np.concatenate([np.c_[xs, np.zeros(w)], np.c_[xs, np.full(w, h - 1.0)],
                             np.c_[np.zeros(h), ys], np.c_[np.full(h, w - 1.0), ys]])
    normalized = undistort_pixels(camera, border, np.eye(3))
    scale = 1.0
    for i, (f, c, size) in enumerate(((K[0, 0], K[0, 2], w), (K[1, 1], K[1, 2], h))):
        x = normalized[:, i]
        high, low = x[x > 1e-9], x[x < -1e-9]
        if high.size:
            scale = min(scale, float(((size - 1 - c) / (f * high)).min()))
        if low.size:
            scale = min(scale, float((-c / (f * low)).min()))
    K_render = K.copy()
    K_render[0, 0] *= 0.995 * scale
    K_render[1, 1] *= 0.995 * scale
    return K_render


def distortion_maps(camera: CameraModel, K_render: np.ndarray, step: int = 4):
    """``cv2.remap`` maps that turn a pinhole render into the distorted image of ``camera``.

    For each distorted output pixel the source pixel of the pinhole render
    with intrinsics ``K_render`` is found with the core's lens model
    (:func:`keypoint_perception.core.distortion.undistort_pixels`) on a
    coarse grid (every ``step`` px) and interpolated bilinearly (the mapping
    is smooth).

    Returns:
        (map_x, map_y), each (H, W) float32.
    """
    w, h = camera.width, camera.height
    # grid nodes i = -1 .. n sit at pixel (i + 0.5) * step - 0.5, which is exactly
    # where cv2.resize(fx=step) puts them, so the upsampled map needs no shift
    gx = (np.arange(-1, w // step + 2) + 0.5) * step - 0.5
    gy = (np.arange(-1, h // step + 2) + 0.5) * step - 0.5
    xx, yy = np.meshgrid(gx, gy)
    und = undistort_pixels(camera, np.stack([xx.ravel(), yy.ravel()], 1), K_render)
    und = und.reshape(len(gy), len(gx), 2).astype(np.float32)
    big = cv2.resize(und, None, fx=step, fy=step, interpolation=cv2.INTER_LINEAR)
    big = big[step:step + h, step:step + w]
    mx, my = np.ascontiguousarray(big[:, :, 0]), np.ascontiguousarray(big[:, :, 1])
    return mx, my


@dataclass(frozen=True)
class SampleCameras:
    """The cameras of one sample.

    Attributes:
        K: (3, 3) float64 intrinsics of the output images (raw, distorted), px.
        distortion: plumb_bob ``[k1, k2]`` of the output images, or None.
        K_render: (3, 3) float64 intrinsics of the pinhole renders (``K``
            itself without distortion).
        rig: the output stereo rig (``K``).
        render_rig: the rendered pinhole rig (``K_render``, same baseline).
        lens: ``{'left': model, 'right': model}``: the core camera models of
            the output views (``K``, ``D``, ``R = I``, ``P`` with
            ``P_right[0, 3] = -fx * baseline``), as their CameraInfo says.
    """

    K: np.ndarray
    distortion: Optional[List[float]]
    K_render: np.ndarray
    rig: StereoRig
    render_rig: StereoRig
    lens: Dict[str, CameraModel]


def sample_cameras(rig_variables: RigVariables, width: int, height: int, near: float,
                   far: float, rng: np.random.Generator,
                   reference_size: Optional[Sequence[int]] = None) -> SampleCameras:
    """Build a sample's stereo rig from its rig variables.

    The focal length is ``fx`` or, when the rig has ``hfov``,
    :func:`focal_from_hfov` of it and ``width``; ``fy = fx * aspect``.  The
    principal point is ``((W - 1) / 2 + s_x cx_offset, (H - 1) / 2 + s_y
    cy_offset)``: the offsets are px at the ``reference_size`` (the config's
    ``image``), scaled by ``s_x = W / W_ref``, ``s_y = H / H_ref`` (both 1
    at the reference size).  With ``distortion`` 1, ``k2`` is
    drawn from ``rng`` (uniform in [-0.05, 0.12], at least ``0.45 k1^2 +
    0.01`` so that the distorted radius grows monotonically with the
    undistorted one).

    Args:
        rig_variables: the sample's rig variables.
        width: image width, px.
        height: image height, px.
        near: near clip plane of the renders, m.
        far: far clip plane of the renders, m.
        rng: the sample's generator (one draw with distortion, none without).
        reference_size: ``(W_ref, H_ref)`` px the principal point offsets
            are given for (None: ``(width, height)``).

    Raises:
        ValueError: neither ``fx`` nor ``hfov`` is set, or a bad ``hfov``.
    """
    if rig_variables.hfov is not None:
        fx = focal_from_hfov(rig_variables.hfov, width)
    elif rig_variables.fx is not None:
        fx = rig_variables.fx
    else:
        raise ValueError('the rig needs fx or hfov')
    cx_offset, cy_offset = rig_variables.cx_offset, rig_variables.cy_offset
    if reference_size is not None and tuple(reference_size) != (width, height):
        cx_offset = cx_offset * width / reference_size[0]
        cy_offset = cy_offset * height / reference_size[1]
    K = np.array([[fx, 0, (width - 1) / 2 + cx_offset],
                  [0, fx * rig_variables.aspect, (height - 1) / 2 + cy_offset],
                  [0, 0, 1]])
    rig = StereoRig(K, width, height, rig_variables.baseline, near, far)
    distortion = None
    if rig_variables.distortion == 1:  # plumb_bob k1, k2; k2 keeps r_d(r_u) monotonic
        k1 = rig_variables.k1
        distortion = [k1, max(rng.uniform(-0.05, 0.12), 0.45 * k1 * k1 + 0.01)]
    lens = {'left': lens_camera(K, distortion, width, height),
            'right': lens_camera(K, distortion, width, height, -K[0, 0] * rig.baseline)}
    if distortion is None:
        return SampleCameras(K, None, K, rig, rig, lens)
    # pinhole rig that is rendered (wider field of view when D distorts)
    K_render = render_intrinsics(lens['left'])
    render_rig = StereoRig(K_render, width, height, rig_variables.baseline, near, far)
    return SampleCameras(K, distortion, K_render, rig, render_rig, lens)


class LensRemap:
    """Resamples pinhole renders into the distorted output camera (maps cached).

    Args:
        width: image width, px.
        height: image height, px.
    """

    def __init__(self, width: int, height: int):
        self.width, self.height = int(width), int(height)
        self._maps_key = None
        self._maps = None

    def apply(self, image: np.ndarray, cameras: SampleCameras,
              interpolation: int = cv2.INTER_NEAREST) -> np.ndarray:
        """Return ``image`` (a pinhole render, ``K_render``) seen by the camera ``(K, D)``.

        Args:
            image: (H, W) or (H, W, C) image of the pinhole render.
            cameras: the sample's cameras; without distortion ``image``
                itself is returned.
            interpolation: ``cv2.remap`` interpolation (nearest for labels,
                depth and segmentation; linear for colour).

        Returns:
            A new image of the same shape and dtype (borders replicated).
        """
        if cameras.distortion is None:
            return image
        lens = cameras.lens['left']  # both views share K and D
        key = (tuple(lens.K.ravel()), tuple(cameras.K_render.ravel()), tuple(lens.D))
        if self._maps_key != key:
            self._maps = distortion_maps(lens, cameras.K_render)
            self._maps_key = key
        return cv2.remap(image, self._maps[0], self._maps[1], interpolation,
                         borderMode=cv2.BORDER_REPLICATE)
