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
"""Input checks for point arrays shared by the geometry modules.

No ROS import.  All arrays are float64 numpy arrays; N is a number of points.
"""

import numpy as np


def as_points(name: str, points, dim: int = 2) -> np.ndarray:
    """Return ``points`` as an (N, dim) float64 array (a view when already one).

    Args:
        name: the argument's name, used in the error message.
        points: anything ``np.asarray`` turns into an (N, dim) array, e.g.
            pixel coordinates (N, 2) or 3D points (N, 3); NaN rows allowed.
        dim: the number of columns required.

    Raises:
        ValueError: if the array is not 2-D with ``dim`` columns.
    """
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f'{name} must have shape (N, {dim}), got {arr.shape}')
    return arr
