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
"""How good an estimated camera-to-robot transform is: ADD, ADD AUC, pose errors.

The metrics of DREAM (Lee et al., "Camera-to-Robot Pose Estimation from a
Single Image", ICRA 2020, sec. V), which its successors (RoboPose, CtRNet)
report too:

* ADD of one frame: the mean distance between the robot's keypoints placed
  in the camera frame by the estimated and by the true ``T_camera_base``,
  ``ADD = 1/J sum_j ||T_est x_j - T_true x_j||`` (x_j in the base frame);
* ADD AUC: the area under the curve "fraction of frames with ADD <= d" for
  d from 0 to 100 mm, divided by 100 mm so that a perfect estimator scores 1.

Metres and radians throughout.  No ROS import.
"""

from typing import Optional, Sequence, Tuple

import numpy as np

from .arrays import as_points

#: Upper end of the ADD thresholds integrated by the AUC (DREAM: 100 mm), metres.
ADD_AUC_MAX_THRESHOLD_M = 0.1


def add_distance(T_estimated: Optional[np.ndarray], T_true: np.ndarray,
                 points_base: np.ndarray) -> float:
    """ADD of one frame: mean keypoint distance under the estimated vs the true transform.

    Args:
        T_estimated: (4, 4) estimated ``T_camera_base``, or None (no
            estimate: ADD is infinite).
        T_true: (4, 4) true ``T_camera_base``.
        points_base: (J, 3) the frame's keypoints in the base frame, metres
            (forward kinematics); NaN rows are left out.

    Returns:
        ADD in metres (inf without an estimate; NaN without a finite point).
    """
    if T_estimated is None:
        return float('inf')
    points = as_points('points_base', points_base, 3)
    points = points[np.all(np.isfinite(points), axis=1)]
    if not len(points):
        return float('nan')
    T_estimated, T_true = np.asarray(T_estimated), np.asarray(T_true)
    moved = (points @ T_estimated[:3, :3].T + T_estimated[:3, 3]) - \
        (points @ T_true[:3, :3].T + T_true[:3, 3])
    return float(np.mean(np.linalg.norm(moved, axis=1)))


def add_auc(add_values: Sequence[float],
            max_threshold_m: float = ADD_AUC_MAX_THRESHOLD_M) -> float:
    """Area under the ADD accuracy-threshold curve up to ``max_threshold_m``, normalized to 1.

    With ``F(d)`` the fraction of frames whose ADD is at most d, the AUC is
    ``1/T integral_0^T F(d) dd`` (T = ``max_threshold_m``).  Each frame
    contributes ``integral_0^T [a_i <= d] dd = max(0, T - a_i)``, so the
    AUC is exactly ``mean_i max(0, 1 - a_i / T)``: the closed form of the
    numerical integration DREAM's evaluation performs.  Frames without an
    estimate (ADD inf or NaN) count as failures (contribute 0).

    Args:
        add_values: ADD of each frame, metres (inf/NaN = failure).
        max_threshold_m: T, metres (DREAM: 0.1).

    Returns:
        AUC in [0, 1]; NaN for no frames.

    Raises:
        ValueError: a negative ADD or a non-positive threshold.
    """
    if not max_threshold_m > 0:
        raise ValueError(f'max_threshold_m must be > 0, got {max_threshold_m}')
    values = np.asarray(add_values, dtype=np.float64).ravel()
    if not values.size:
        return float('nan')
    values = np.where(np.isfinite(values), values, np.inf)
    if np.any(values < 0):
        raise ValueError('ADD values must be >= 0')
    return float(np.mean(np.maximum(0.0, 1.0 - values / max_threshold_m)))


def pose_errors(T_estimated: np.ndarray, T_true: np.ndarray) -> Tuple[float, float]:
    """Return the translation error (metres) and rotation error (radians) of T_estimated.

    Translation: ``||t_est - t_true||``; rotation: the angle of
    ``R_est R_true^T`` (``arccos((trace - 1) / 2)``, Hartley et al.,
    "Rotation Averaging", IJCV 2013, the angular distance).
    """
    T_estimated, T_true = np.asarray(T_estimated), np.asarray(T_true)
    translation = float(np.linalg.norm(T_estimated[:3, 3] - T_true[:3, 3]))
    cosine = (np.trace(T_estimated[:3, :3] @ T_true[:3, :3].T) - 1.0) / 2.0
    return translation, float(np.arccos(np.clip(cosine, -1.0, 1.0)))
