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
"""Labels of a sample: 2D keypoints, COCO visibility, depth and segmentation outputs.

Frames: 3D keypoints in the left camera's optical frame (metres); 2D
keypoints in pixels of each view's output image (OpenCV convention, pixel
centres at integer coordinates; lens distortion applied when the sample
has it).  Visibility follows COCO: 0 outside the image, 1 occluded, 2
visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from keypoint_perception.core.distortion import unrectify_points
import numpy as np

from .optics import LensRemap, SampleCameras
from .rendering import VIEWS
from .scene.layout import BuiltScene
from .scene.support_plane import Render

#: classes of the optional segmentation output (uint8): background and support
#: plane, the labelled object, occluders (hands, bars), distractors, and payloads /
#: tools / cables attached to a robot (:mod:`sim_datagen.scene.attachments`)
SEG_BACKGROUND, SEG_BOARD, SEG_OCCLUDER, SEG_DISTRACTOR, SEG_ATTACHMENT = 0, 1, 2, 3, 4


def inside_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: pixel ``uv`` (N, 2) is finite and in ``[-0.5, W-0.5) x [-0.5, H-0.5)``."""
    return ((uv[:, 0] >= -0.5) & (uv[:, 0] < width - 0.5) & (uv[:, 1] >= -0.5)
            & (uv[:, 1] < height - 0.5) & np.all(np.isfinite(uv), axis=1))


def keypoint_visibility(uv: np.ndarray, z: np.ndarray, seg: np.ndarray, board_ids,
                        depth: Optional[np.ndarray] = None, depth_tolerance=None
                        ) -> np.ndarray:
    """COCO visibility per keypoint, decided from the rendered segmentation (and depth).

    Args:
        uv: (J, 2) pixel coordinates of the keypoints in this view (pinhole).
        z: (J,) keypoint depth in this camera's optical frame, m.
        seg: (H, W) int segmentation of this view (PyBullet body unique ids,
            -1 where nothing was drawn).
        board_ids: body ids that belong to the object (board print + backing).
        depth: optional (H, W) rendered optical depth of this view, m.
        depth_tolerance: with ``depth``: (J,) or scalar, m; how far the
            object's own surface may lie in front of the keypoint (a joint
            origin inside a robot link, a point on a surface) and still
            count as visible.

    Returns:
        (J,) int64: 0 outside the image (pixel centre range ``[-0.5, W-0.5)``)
        or behind the camera, 1 occluded, 2 visible.  Without ``depth``:
        2 iff the object itself is rendered at the keypoint's (nearest)
        pixel.  With ``depth``: 2 iff nothing is rendered there, or the
        rendered surface is not in front of the keypoint (an object surface
        may be ``depth_tolerance`` in front, another body not at all).
    """
    H, W = seg.shape
    uv = np.asarray(uv, dtype=np.float64)
    vis = np.zeros(len(uv), np.int64)
    ok = inside_image(uv, W, H) & (np.asarray(z) > 0)
    tol = None if depth is None else np.broadcast_to(
        np.asarray(depth_tolerance, np.float64), (len(uv),))
    for j in np.nonzero(ok)[0]:
        c = int(np.clip(np.rint(uv[j, 0]), 0, W - 1))
        r = int(np.clip(np.rint(uv[j, 1]), 0, H - 1))
        own = int(seg[r, c]) in board_ids
        if depth is None:
            vis[j] = 2 if own else 1
        elif seg[r, c] < 0:
            vis[j] = 2
        else:
            vis[j] = 2 if depth[r, c] >= z[j] - (tol[j] if own else 1e-3) else 1
    return vis


@dataclass(frozen=True)
class KeypointLabels:
    """2D keypoints and visibility of both views.

    Attributes:
        uv: ``{'left': (J, 2), 'right': (J, 2)}`` float64 pixels of the output images.
        visibility: ``{'left': (J,), 'right': (J,)}`` int64 COCO visibility.
    """

    uv: Dict[str, np.ndarray]
    visibility: Dict[str, np.ndarray]


def keypoint_labels(cameras: SampleCameras, scene: BuiltScene, renders: Dict[str, Render]
                    ) -> KeypointLabels:
    """Project the scene's 3D keypoints into both views and decide their visibility.

    The 2D label is the core's projection of the 3D keypoint into the
    view's camera model (:func:`keypoint_perception.core.distortion.unrectify_points`
    with ``cameras.lens``: ``K``, ``D``, ``P`` as the CameraInfo says), the
    model inference rectifies detections with.  Visibility is decided in
    the pinhole renders (segmentation, and depth when the scene has a depth
    tolerance); with lens distortion a keypoint whose distorted pixel leaves
    the output image is 0.
    """
    keypoints = scene.keypoints_3d
    cams = {'left': cameras.rig.left, 'right': cameras.rig.right}
    render_cams = {'left': cameras.render_rig.left, 'right': cameras.render_rig.right}
    uv, vis = {}, {}
    for n in VIEWS:
        cam, render_cam = cams[n], render_cams[n]
        uv_render = render_cam.project(keypoints)  # pixel in the (pinhole) render
        z = cam.to_camera(keypoints)[:, 2]
        if scene.depth_tolerance is None:
            vis[n] = keypoint_visibility(uv_render, z, renders[n][2], scene.object_ids)
        else:
            vis[n] = keypoint_visibility(uv_render, z, renders[n][2], scene.object_ids,
                                         render_cam.linear_depth(renders[n][1]),
                                         scene.depth_tolerance)
        uv[n] = unrectify_points(cameras.lens[n], keypoints)
        if cameras.distortion is not None:  # in/out decided in the distorted image
            vis[n][~inside_image(uv[n], cam.width, cam.height)] = 0
    return KeypointLabels(uv, vis)


def depth_output(cameras: SampleCameras, render: Render, lens: LensRemap) -> np.ndarray:
    """(H, W) uint16 depth of a view's output image, mm (0: no geometry; nearest resampling)."""
    depth = cameras.render_rig.left.linear_depth(render[1])
    depth_mm = np.where(render[2] >= 0, np.round(depth * 1000), 0)
    return lens.apply(np.clip(depth_mm, 0, 65535).astype(np.uint16), cameras)


def segmentation_output(cameras: SampleCameras, scene: BuiltScene, render: Render,
                        lens: LensRemap) -> np.ndarray:
    """(H, W) uint8 segmentation of a view's output image (``SEG_*`` classes)."""
    render_seg = render[2]
    seg = np.zeros(render_seg.shape, np.uint8)
    seg[np.isin(render_seg, list(scene.object_ids))] = SEG_BOARD
    seg[np.isin(render_seg, scene.occluder_ids)] = SEG_OCCLUDER
    seg[np.isin(render_seg, scene.distractor_ids)] = SEG_DISTRACTOR
    seg[np.isin(render_seg, scene.attachment_ids)] = SEG_ATTACHMENT
    return lens.apply(seg, cameras)
