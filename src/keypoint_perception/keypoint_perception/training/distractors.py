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
"""Procedural clutter pasted into training views (a 2D domain randomization).

Rendered scenes rarely contain the high-frequency, grid-like clutter of real
desks: keyboards (rows of light key caps with dark gaps: many X-junctions),
striped clothing and patterned fabric, text on whiteboards.  A belief-map
network trained without it fires on such clutter.  This module draws such
patches procedurally (no real image is involved), warps each by a random
homography and pastes it into a training view *away from the keypoints*, so
labels stay exact (cut-and-paste augmentation in the spirit of Dwibedi et
al., "Cut, Paste and Learn", ICCV 2017, with procedural instead of real
patches).
"""

from typing import Callable, Dict, Tuple

import cv2
import numpy as np


def _keyboard(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw a grey keyboard: a case with rows of key caps; (image, mask)."""
    rows, cols = int(rng.integers(4, 7)), int(rng.integers(10, 18))
    h, w = max(int(size * rows / cols * 1.1), 8), size
    case, key = rng.uniform(10, 90), rng.uniform(120, 250)
    if rng.random() < 0.3:  # light case, dark keys
        case, key = key, case
    img = np.full((h, w), case, np.float32)
    pitch_x, pitch_y = w / (cols + 0.6), h / (rows + 0.6)
    gap = rng.uniform(0.12, 0.3)
    for r in range(rows):
        for c in range(cols):
            x0 = (c + 0.3 + gap / 2) * pitch_x
            y0 = (r + 0.3 + gap / 2) * pitch_y
            shade = key + rng.normal(0, 10)
            cv2.rectangle(img, (int(x0), int(y0)),
                          (int(x0 + (1 - gap) * pitch_x), int(y0 + (1 - gap) * pitch_y)),
                          float(shade), -1)
    return img, np.ones((h, w), np.float32)


def _stripes(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw striped fabric in an irregular blob (shirt, towel); (image, mask)."""
    h, w = size, int(size * rng.uniform(0.6, 1.4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(3, 12)
    phase = xx * np.cos(angle) + yy * np.sin(angle)
    phase += rng.uniform(0, 3) * np.sin(yy / rng.uniform(8, 30))  # folds
    duty = rng.uniform(0.2, 0.6)
    a, b = rng.uniform(0, 120), rng.uniform(130, 255)
    img = np.where((phase / period) % 1.0 < duty, a, b).astype(np.float32)
    mask = np.zeros((h, w), np.uint8)
    centre = (w // 2, h // 2)
    axes = (int(w * rng.uniform(0.3, 0.5)), int(h * rng.uniform(0.3, 0.5)))
    cv2.ellipse(mask, centre, axes, rng.uniform(0, 180), 0, 360, 1, -1)
    return img, mask.astype(np.float32)


def _scribbles(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw hand-written-like strokes on a light board (whiteboard, paper); (image, mask)."""
    h, w = int(size * rng.uniform(0.5, 1.0)), size
    img = np.full((h, w), rng.uniform(170, 250), np.float32)
    ink = rng.uniform(0, 90)
    for _ in range(int(rng.integers(8, 30))):
        pts = np.cumsum(rng.normal(0, size / 20, (int(rng.integers(3, 8)), 2)), axis=0)
        pts += rng.uniform((0, 0), (w, h))
        cv2.polylines(img, [pts.astype(np.int32)], False, float(ink), int(rng.integers(1, 3)))
    return img, np.ones((h, w), np.float32)


def _grid(rng: np.random.Generator, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw a grid of lines or dots (ceiling tiles, shelves, pegboard); (image, mask)."""
    h, w = int(size * rng.uniform(0.5, 1.2)), size
    bg, fg = rng.uniform(0, 255, 2)
    img = np.full((h, w), bg, np.float32)
    step = rng.uniform(4, 16)
    thick = int(rng.integers(1, 3))
    if rng.random() < 0.5:
        for x in np.arange(0, w, step):
            cv2.line(img, (int(x), 0), (int(x), h), float(fg), thick)
        for y in np.arange(0, h, step):
            cv2.line(img, (0, int(y)), (w, int(y)), float(fg), thick)
    else:
        for x in np.arange(step / 2, w, step):
            for y in np.arange(step / 2, h, step):
                cv2.circle(img, (int(x), int(y)), thick, float(fg), -1)
    return img, np.ones((h, w), np.float32)


#: Patch generators by name: ``f(rng, size_px) -> (grey image, mask)``, float32.
PATCHES: Dict[str, Callable] = {'keyboard': _keyboard, 'stripes': _stripes,
                                'scribbles': _scribbles, 'grid': _grid}


def paste_distractors(image: np.ndarray, uv: np.ndarray, visibility: np.ndarray,
                      rng: np.random.Generator, max_patches: int = 3,
                      keypoint_margin: float = 6.0, tries: int = 6) -> np.ndarray:
    """Paste 1..``max_patches`` procedural clutter patches that avoid the keypoints.

    Each patch (see :data:`PATCHES`) is drawn at a random size (15-60% of the
    image width), warped by a random homography (perspective tilt, rotation)
    and alpha-blended with a feathered edge.  A placement whose mask comes
    within ``keypoint_margin`` pixels of a labelled keypoint (visibility > 0)
    is drawn again, up to ``tries`` times, then skipped: labels never change.

    Args:
        image: (h, w, 3) uint8 RGB view at network input size.
        uv: (J, 2) float keypoints in the same pixels.
        visibility: (J,) uint8 COCO visibility.
        rng: random generator.
        max_patches: most patches per view.
        keypoint_margin: clearance around keypoints, pixels.
        tries: placements tried per patch.

    Returns:
        (h, w, 3) uint8 image with the patches.
    """
    h, w = image.shape[:2]
    out = image.astype(np.float32)
    labelled = uv[(visibility > 0) & np.isfinite(uv).all(axis=1)]
    names = sorted(PATCHES)
    for _ in range(int(rng.integers(1, max_patches + 1))):
        patch, mask = PATCHES[names[rng.integers(len(names))]](
            rng, int(w * rng.uniform(0.15, 0.6)))
        ph, pw = patch.shape
        src = np.float32([[0, 0], [pw, 0], [pw, ph], [0, ph]])
        for _ in range(tries):
            centre = rng.uniform((0, 0), (w, h))
            ang = rng.uniform(0, 2 * np.pi)
            rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
            corners = (src - (pw / 2, ph / 2)) * rng.uniform(0.7, 1.0, (4, 1))
            dst = (corners @ rot.T + centre).astype(np.float32)
            H = cv2.getPerspectiveTransform(src, dst)
            alpha = cv2.warpPerspective(mask, H, (w, h), flags=cv2.INTER_LINEAR)
            if labelled.size:
                near = cv2.dilate((alpha > 0.01).astype(np.uint8),
                                  np.ones((2 * int(keypoint_margin) + 1,) * 2, np.uint8))
                cols = np.clip(np.round(labelled[:, 0]).astype(int), 0, w - 1)
                rows = np.clip(np.round(labelled[:, 1]).astype(int), 0, h - 1)
                if near[rows, cols].any():
                    continue
            tex = cv2.warpPerspective(patch, H, (w, h), flags=cv2.INTER_AREA)
            alpha = cv2.GaussianBlur(alpha, (0, 0), 0.7)[..., None]
            tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
            out = out * (1 - alpha) + tex[..., None] * tint * alpha
            break
    return np.clip(out, 0, 255).astype(np.uint8)
