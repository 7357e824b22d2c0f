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
"""Camera colour response shared by the simulator's renders and the training augmentation.

The one model of a camera's residual white-balance error: the simulator
(``sim_datagen.imaging``) casts its renders with it and the training
augmentation (:func:`keypoint_perception.training.data.augment_view`) casts
the stored views with it, so that both cover the same cameras.  No ROS
import.
"""

import numpy as np

#: largest colour-temperature error, as the log of the red (and inverse blue) gain
WB_TEMPERATURE_LOG_GAIN = 0.4
#: largest independent tint per channel, as a log gain
WB_TINT_LOG_GAIN = 0.05


def white_balance_gains(rng: np.random.Generator) -> np.ndarray:
    """Draw the residual white-balance error of an auto-white-balanced camera.

    A colour-temperature error ``t`` ~ U(-1, 1) moves red and blue in
    opposite directions (gains ``exp(+-0.4 t)``, 0.67 .. 1.5: warm or cold
    casts) plus a small independent tint per channel (+-5%), as a camera's
    grey-world estimate under tungsten, LED or daylight misses.

    Args:
        rng: the random generator (3 + 1 draws).

    Returns:
        (3,) float64 RGB gains, about 0.64 .. 1.57, green within 5% of 1.
    """
    t = rng.uniform(-1.0, 1.0)
    tint = rng.uniform(-WB_TINT_LOG_GAIN, WB_TINT_LOG_GAIN, 3)
    return np.exp(np.array([WB_TEMPERATURE_LOG_GAIN * t, 0.0,
                            -WB_TEMPERATURE_LOG_GAIN * t]) + tint)
