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
"""Loss-prioritized drawing of training views (hard example mining).

The mean keypoint error of a belief-map network is dominated by a few views
it still gets badly wrong (a corner next to clutter, a board at a grazing
angle), which uniform sampling shows it as rarely as the easy ones.  The
sampler here draws each view with a probability that mixes uniform sampling
with one proportional to the view's last training loss, as in prioritized
experience replay (Schaul et al. 2016, "Prioritized Experience Replay",
proportional variant):

    p_i = (1 - h) / N + h * l_i^a / sum_k l_k^a

with ``h`` the prioritized share and ``a`` the priority exponent.  Views not
drawn yet carry the largest loss seen so far, so every view is visited early.
This is the trainer's counterpart of :mod:`sim_datagen`'s adaptive scene
sampling, which acts on what is rendered rather than on what is drawn.
"""

from typing import Optional

import numpy as np


class LossPrioritizedSampler:
    """Draw view indices with probability rising with their last loss."""

    def __init__(self, num_views: int, prioritized_share: float = 0.5,
                 exponent: float = 1.0, rng: Optional[np.random.Generator] = None):
        """Start with every view at the same priority.

        Args:
            num_views: N, number of training views (> 0).
            prioritized_share: h in [0, 1]; 0 is uniform sampling.
            exponent: a >= 0 applied to the losses (0 is uniform as well).
            rng: random generator (a fresh default one if None).

        Raises:
            ValueError: on an empty view set or out-of-range parameters.
        """
        if num_views <= 0:
            raise ValueError(f'need at least one view, got {num_views}')
        if not 0.0 <= prioritized_share <= 1.0:
            raise ValueError(f'prioritized_share must be in [0, 1], got {prioritized_share}')
        if exponent < 0:
            raise ValueError(f'exponent must be >= 0, got {exponent}')
        self.share = float(prioritized_share)
        self.exponent = float(exponent)
        self.rng = rng if rng is not None else np.random.default_rng()
        # NaN = not drawn yet (priority: the largest loss seen so far)
        self.loss = np.full(num_views, np.nan)

    def __len__(self) -> int:
        return len(self.loss)

    def probabilities(self) -> np.ndarray:
        """(N,) float64 draw probabilities, summing to 1."""
        n = len(self.loss)
        seen = np.isfinite(self.loss)
        if not seen.any() or self.share == 0.0:
            return np.full(n, 1.0 / n)
        loss = np.where(seen, self.loss, np.nanmax(self.loss))
        prio = np.maximum(loss, 1e-12) ** self.exponent
        return (1.0 - self.share) / n + self.share * prio / prio.sum()

    def sample(self, batch: int) -> np.ndarray:
        """(batch,) int64 view indices, drawn with replacement."""
        if self.share == 0.0:
            return self.rng.integers(0, len(self.loss), batch)
        return self.rng.choice(len(self.loss), size=batch, p=self.probabilities())

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Record the training losses (>= 0, finite) of the views just used.

        Raises:
            ValueError: when shapes differ or a loss is negative or not finite.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        losses = np.asarray(losses, dtype=np.float64).reshape(-1)
        if indices.shape != losses.shape:
            raise ValueError(f'{indices.size} indices but {losses.size} losses')
        if not np.all(np.isfinite(losses)) or np.any(losses < 0):
            raise ValueError('losses must be finite and non-negative')
        self.loss[indices] = losses

    def resize(self, num_views: int) -> None:
        """Forget the priorities after the view set changed (new shards)."""
        if num_views <= 0:
            raise ValueError(f'need at least one view, got {num_views}')
        self.loss = np.full(num_views, np.nan)

    def state_dict(self) -> dict:
        """Priorities for a resumable checkpoint."""
        return {'loss': self.loss.copy()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (ignored if the view count differs)."""
        if len(state['loss']) == len(self.loss):
            self.loss = np.asarray(state['loss'], dtype=np.float64).copy()
