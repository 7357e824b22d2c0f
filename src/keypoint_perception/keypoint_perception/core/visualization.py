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
"""Annotated debug images: keypoints, skeleton, belief maps, 3D coordinates."""

from typing import Optional

import cv2
import numpy as np

from .objects import ObjectClass
from .pipeline import StereoResult
from .roi import window_overlap
from .views import ViewKeypoints

#: Colours per keypoint index (RGB), cycled.
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230)]


def _to_rgb(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB) if img.ndim == 2 else img.copy()


def overlay_beliefs(image: np.ndarray, beliefs: np.ndarray, alpha: float = 0.45,
                    roi=None) -> np.ndarray:
    """Blend the max over keypoints of (J, h, w) beliefs onto an (H, W, 3) RGB image.

    ``roi`` (x0, y0, w, h) is the window the beliefs cover (None: the whole
    image); it is outlined, and the image outside it is left as it is.
    """
    h, w = image.shape[:2]
    if roi is None:
        heat = cv2.resize(beliefs.max(axis=0), (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        x0, y0, rw, rh = (int(value) for value in roi)
        window = cv2.resize(beliefs.max(axis=0), (rw, rh), interpolation=cv2.INTER_LINEAR)
        heat = np.zeros((h, w), np.float32)
        in_image, in_window = window_overlap(roi, image.shape)
        heat[in_image] = window[in_window]
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET)[..., ::-1]
    weight = (alpha * np.clip(heat, 0, 1))[..., None]
    out = np.uint8(image * (1 - weight) + colour * weight)
    if roi is not None:
        cv2.rectangle(out, (x0, y0), (x0 + rw - 1, y0 + rh - 1), (255, 255, 255), 1)
    return out


def draw_view(image: np.ndarray, det: ViewKeypoints, object_class: ObjectClass,
              xyz: Optional[np.ndarray] = None, valid: Optional[np.ndarray] = None,
              beliefs: bool = True) -> np.ndarray:
    """Draw one view: belief overlay, skeleton, keypoints, names and 3D positions (mm).

    Args:
        image: (H, W, 3) uint8 RGB or (H, W) grey.
        det: detections of the view, pixels of ``image``.
        object_class: the object (skeleton and keypoint names).
        xyz: optional (J, 3) metres to print next to each keypoint.
        valid: optional (J,) bool; invalid 3D points are drawn hollow.

    Returns:
        (H, W, 3) uint8 RGB annotated copy.
    """
    out = _to_rgb(image)
    if beliefs:
        out = overlay_beliefs(out, det.beliefs, roi=det.roi)
    ok = np.isfinite(det.uv).all(axis=1)
    for a, b in object_class.skeleton:
        if ok[a] and ok[b]:
            pa, pb = np.int32(np.round(det.uv[[a, b]]))
            cv2.line(out, tuple(pa), tuple(pb), (255, 160, 30), 1, cv2.LINE_AA)
    for j, name in enumerate(object_class.keypoint_names):
        if not ok[j]:
            continue
        p = tuple(np.int32(np.round(det.uv[j])))
        col = PALETTE[j % len(PALETTE)]
        filled = valid is None or bool(valid[j])
        cv2.circle(out, p, 5, col, -1 if filled else 1, cv2.LINE_AA)
        label = f'{j}'
        if xyz is not None and filled and np.isfinite(xyz[j]).all():
            label += ' ({:.0f},{:.0f},{:.0f})mm'.format(*(1000 * xyz[j]))
        cv2.putText(out, label, (p[0] + 6, p[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0),
                    3, cv2.LINE_AA)
        cv2.putText(out, label, (p[0] + 6, p[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, col, 1,
                    cv2.LINE_AA)
    return out


def draw_stereo(left: np.ndarray, right: np.ndarray, result: StereoResult,
                object_class: ObjectClass, beliefs: bool = True, title: str = '') -> np.ndarray:
    """Return the left and right annotated views side by side, (H, W_l + W_r, 3) uint8 RGB.

    The right view is resized to the left view's height if they differ; 3D
    positions (mm, left optical frame) are printed in the left view only.
    """
    left_drawn = draw_view(left, result.left, object_class, result.xyz, result.valid, beliefs)
    right_drawn = draw_view(right, result.right, object_class, None, result.valid, beliefs)
    if right_drawn.shape[0] != left_drawn.shape[0]:
        height = left_drawn.shape[0]
        right_drawn = cv2.resize(
            right_drawn, (int(right_drawn.shape[1] * height / right_drawn.shape[0]), height))
    out = np.concatenate([left_drawn, right_drawn], axis=1)
    if title:
        cv2.putText(out, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3,
                    cv2.LINE_AA)
        cv2.putText(out, title, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out
