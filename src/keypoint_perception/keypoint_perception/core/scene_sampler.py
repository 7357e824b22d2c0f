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
"""Dirichlet-binned scene-variable sampler with conjugate feedback update (no ROS).

Part of the core because its state is part of the dataset format: the
simulator (``sim_datagen``) draws scene variables with it and records each
sample's bins and the sampler state in the dataset, and training
(``keypoints-feedback``) folds the bins of the hardest samples back into that
state.  Both import it from here, so neither imports the other.

Implements the adaptive domain randomization of

    C. Heindl, L. Brunner, S. Zambal, J. Scharinger, "Learning to Predict
    Robot Keypoints Using Artificially Generated Images", 2020
    (ETFA 2019 / arXiv:1907.01879).

Each randomized scene variable has a range ``[lo, hi]`` split into ``K``
equal bins.  A value is drawn hierarchically::

    D     ~ Dirichlet(theta)          (theta: K positive concentrations)
    k | D ~ Categorical(D)
    x | k ~ Uniform(lo_k, hi_k)

Marginally ``P(k) = theta_k / sum(theta)``.  Training feedback (the bins of
the validation samples with the highest loss) is folded in with the
conjugate Dirichlet posterior ``theta <- theta + counts``, which shifts
future sampling towards hard regions of the scene space.

Categorical choices (e.g. the background type) are variables with
``categorical=True``: bin ``k`` *is* the value (an ``int`` in ``[0, K)``).
"""

from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

ArrayLike = Union[float, Sequence[float], np.ndarray]


class BinnedVariable:
    """One scene variable with a binned range and a Dirichlet prior.

    Args:
        name: unique variable name.
        lo: lower bound of the range (units of the variable).
        hi: upper bound (``hi >= lo``).
        bins: number of equal-width bins ``K`` (>= 1).
        alpha0: prior concentration; a scalar (same for all bins) or ``K``
            values (a non-uniform prior, e.g. rare "out of view" cases).
        categorical: if True the value is the integer bin index itself
            (``lo``/``hi`` are ignored for the value).
    """

    def __init__(self, name: str, lo: float, hi: float, bins: int,
                 alpha0: ArrayLike = 1.0, categorical: bool = False):
        if bins < 1:
            raise ValueError(f'{name}: bins must be >= 1')
        if hi < lo:
            raise ValueError(f'{name}: hi < lo')
        self.name = name
        self.lo = float(lo)
        self.hi = float(hi)
        self.bins = int(bins)
        self.categorical = bool(categorical)
        theta = np.broadcast_to(np.asarray(alpha0, dtype=np.float64), (self.bins,)).copy()
        if np.any(theta <= 0):
            raise ValueError(f'{name}: alpha0 must be > 0')
        self.theta0 = theta.copy()
        #: current Dirichlet concentrations, shape (K,), float64
        self.theta = theta

    @property
    def edges(self) -> np.ndarray:
        """Bin edges, shape (K+1,), float64."""
        return np.linspace(self.lo, self.hi, self.bins + 1)

    def bin_probabilities(self) -> np.ndarray:
        """Marginal bin probabilities ``theta / sum(theta)``, shape (K,)."""
        return self.theta / self.theta.sum()

    def sample(self, rng: np.random.Generator) -> Tuple[Union[float, int], int]:
        """Draw ``(value, bin)`` with the hierarchical Dirichlet scheme."""
        d = rng.dirichlet(self.theta)
        k = int(rng.choice(self.bins, p=d / d.sum()))
        if self.categorical:
            return k, k
        e = self.edges
        return float(rng.uniform(e[k], e[k + 1])), k

    def bin_of(self, value: float) -> int:
        """Bin index of ``value`` (clipped into the range)."""
        if self.categorical:
            return int(np.clip(int(value), 0, self.bins - 1))
        if self.hi == self.lo:
            return 0
        k = int(np.floor((value - self.lo) / (self.hi - self.lo) * self.bins))
        return int(np.clip(k, 0, self.bins - 1))

    def update(self, counts: ArrayLike) -> None:
        """Conjugate posterior update ``theta += counts`` (counts >= 0, shape (K,))."""
        c = np.asarray(counts, dtype=np.float64).reshape(-1)
        if c.shape != (self.bins,):
            raise ValueError(f'{self.name}: counts must have shape ({self.bins},)')
        if np.any(c < 0):
            raise ValueError(f'{self.name}: counts must be >= 0')
        self.theta = self.theta + c

    def to_dict(self) -> dict:
        """JSON-serializable description including the current ``theta``."""
        return {'name': self.name, 'lo': self.lo, 'hi': self.hi, 'bins': self.bins,
                'categorical': self.categorical, 'theta0': self.theta0.tolist(),
                'theta': self.theta.tolist()}

    @classmethod
    def from_config(cls, name: str, cfg: Mapping) -> 'BinnedVariable':
        """Build from a config entry.

        Accepted forms: ``{range: [lo, hi], bins: K, alpha: a}`` for a
        continuous variable, ``{choices: K, alpha: a}`` or
        ``{choices: [names...], alpha: a}`` for a categorical one.
        """
        alpha = cfg.get('alpha', 1.0)
        if 'choices' in cfg:
            ch = cfg['choices']
            k = len(ch) if isinstance(ch, (list, tuple)) else int(ch)
            return cls(name, 0, k, k, alpha, categorical=True)
        lo, hi = cfg['range']
        return cls(name, lo, hi, int(cfg.get('bins', 1)), alpha)


class SceneSampler:
    """A set of :class:`BinnedVariable` sharing one random generator.

    Args:
        variables: the variables (unique names).
        rng: default generator used by :meth:`sample`.
    """

    def __init__(self, variables: Iterable[BinnedVariable],
                 rng: Optional[np.random.Generator] = None):
        self.variables: Dict[str, BinnedVariable] = {}
        for v in variables:
            if v.name in self.variables:
                raise ValueError(f'duplicate variable {v.name}')
            self.variables[v.name] = v
        self.rng = rng if rng is not None else np.random.default_rng()

    @classmethod
    def from_config(cls, cfg: Mapping[str, Mapping],
                    rng: Optional[np.random.Generator] = None) -> 'SceneSampler':
        """Build from the ``variables`` mapping of a config file."""
        return cls([BinnedVariable.from_config(n, c) for n, c in cfg.items()], rng)

    def __getitem__(self, name: str) -> BinnedVariable:
        return self.variables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.variables

    def sample(self, rng: Optional[np.random.Generator] = None
               ) -> Dict[str, Tuple[Union[float, int], int]]:
        """Draw all variables in insertion order: ``{name: (value, bin)}``.

        ``rng`` overrides the default generator (used for per-sample seeds so
        that results do not depend on the number of worker processes).
        """
        g = rng if rng is not None else self.rng
        return {n: v.sample(g) for n, v in self.variables.items()}

    def update(self, counts: Mapping[str, ArrayLike]) -> None:
        """Conjugate Dirichlet posterior update, ``theta[name] += counts[name]``."""
        for n, c in counts.items():
            self.variables[n].update(c)

    def counts_from_bins(self, bin_dicts: Iterable[Mapping[str, int]]) -> Dict[str, np.ndarray]:
        """Count the bins of some samples per variable, ready for :meth:`update`.

        ``bin_dicts`` are ``{name: bin}`` of e.g. the highest-loss
        validation samples.
        """
        out = {n: np.zeros(v.bins) for n, v in self.variables.items()}
        for bd in bin_dicts:
            for n, k in bd.items():
                if n in out:
                    out[n][int(k)] += 1
        return out

    def state_dict(self) -> dict:
        """JSON-serializable state: every variable's range, bins and ``theta``."""
        return {'variables': {n: v.to_dict() for n, v in self.variables.items()}}

    def load_state_dict(self, state: Mapping) -> None:
        """Restore ``theta`` of the variables present in ``state`` (a :meth:`state_dict`).

        Variables missing from the state keep their current ``theta``.
        Nothing changes when the state is refused.

        Raises:
            ValueError: no ``variables`` mapping of ``{name: {"theta": [...]}}``,
                a bin count that differs from the variable's, or a ``theta``
                that is not finite and positive (a Dirichlet parameter).
        """
        variables = state.get('variables') if isinstance(state, Mapping) else None
        if not isinstance(variables, Mapping):
            raise ValueError('a sampler state needs "variables": {name: {"theta": [...]}} '
                             '(SceneSampler.state_dict)')
        restored = {}
        for n, d in variables.items():
            if n not in self.variables:
                continue
            v = self.variables[n]
            theta = np.asarray(d['theta'] if isinstance(d, Mapping) else None, dtype=np.float64)
            if theta.shape != (v.bins,):
                raise ValueError(f'{n}: state has theta of shape {theta.shape}, expected '
                                 f'({v.bins},)')
            if not (np.all(np.isfinite(theta)) and np.all(theta > 0)):
                raise ValueError(f'{n}: theta must be finite and positive, got {theta.tolist()}')
            restored[n] = theta.copy()
        for n, theta in restored.items():
            self.variables[n].theta = theta
