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
"""The randomized scene variables of one sample, as typed groups.

Every scene-level variable is drawn through the Dirichlet-binned
:class:`~keypoint_perception.core.scene_sampler.SceneSampler` (Heindl et al. 2020) and
recorded with its bin in the labels.  The stages of the generator read them
from the frozen groups below (stereo rig, placement in the image, board,
URDF object view, lighting, background, camera response) instead of a dict
keyed by strings; a variable a stage needs but the config lacks is reported
once, when the generator is built (:func:`missing_variables`).

Class-specific variables that a config names itself (a URDF source's
``scale``, a procedural family's parameters, a joint's ``variable``) keep
their config names: they are looked up in :attr:`SceneVariables.by_name`.

Units: metres, degrees, pixels, grey levels; categorical variables are the
integer bin index (see the config files).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, MISSING
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from keypoint_perception.core.scene_sampler import SceneSampler
import numpy as np

#: a variable's value: float for a continuous variable, int for a categorical one
Value = Union[float, int]

SCENE_KINDS = ('checkerboard', 'urdf')


@dataclass(frozen=True)
class RigVariables:
    """Stereo rig and lens of a sample.

    Attributes:
        fx: focal length, px (``fy = fx * aspect``); None when ``hfov`` gives it.
        hfov: horizontal field of view of the pinhole ``K``, degrees; when
            set, ``fx = (W / 2) / tan(hfov / 2)`` (see
            :func:`sim_datagen.optics.focal_from_hfov`) and ``fx`` is unused.
        aspect: ``fy / fx``.
        cx_offset: principal point, px right of the image centre ``(W - 1) / 2``.
        cy_offset: principal point, px below the image centre ``(H - 1) / 2``.
        baseline: distance between the two optical centres, m (right camera
            at ``+baseline`` along the left optical frame's x axis).
        distortion: 0 none, 1 radial plumb_bob (k1 from ``k1``, k2 drawn).
        k1: plumb_bob k1 when ``distortion`` is 1.
        image_size: bin index into the ``image_size`` variable's ``[W, H]``
            choices (see :class:`sim_datagen.generator.SampleGenerator`), or
            None: the config's fixed ``image`` size.
    """

    aspect: Value
    cx_offset: Value
    cy_offset: Value
    baseline: Value
    distortion: Value
    fx: Optional[Value] = None
    hfov: Optional[Value] = None
    k1: Value = 0.0
    image_size: Optional[Value] = None


@dataclass(frozen=True)
class PlacementVariables:
    """Where the object's reference point lands in the left image.

    Attributes:
        center_x: -1 .. 1 across the horizontal range that keeps the object
            in view (see :func:`sim_datagen.scene.layout.centre_in_view`).
        center_y: -1 .. 1, vertically.
        out_of_view: 1 widens both ranges by 35 % of the object's extent,
            so that part of it may leave the image.
    """

    center_x: Value
    center_y: Value
    out_of_view: Value


@dataclass(frozen=True)
class BoardVariables:
    """The chessboard, its pose and its occluders (``scene: checkerboard``).

    Attributes:
        square_size: m.
        margin: white border around the squares, in squares.
        frame: backing plate beyond the paper, in squares.
        thickness: of the backing plate, m.
        checker_phase: colour of the -x/-y corner square (categorical).
        board_black: grey level of the dark squares (rounded to 10s).
        paper_brightness: 0 .. 1.
        board_width_frac: board width / image width.
        tilt_x, tilt_y, roll: board rotation, degrees.
        hands: 0 none, 1 left, 2 right, 3 both.
        hand_overlap: how far the fingers reach onto the board, m.
        bar: 1 adds a bar crossing the board.
        n_distractors: number of distractor bodies.
    """

    square_size: Value
    margin: Value
    frame: Value
    thickness: Value
    checker_phase: Value
    board_black: Value
    paper_brightness: Value
    board_width_frac: Value
    tilt_x: Value
    tilt_y: Value
    roll: Value
    hands: Value
    hand_overlap: Value
    bar: Value
    n_distractors: Value


@dataclass(frozen=True)
class ObjectViewVariables:
    """A URDF object's view, appearance and surroundings (``scene: urdf``).

    Attributes:
        view_azimuth: degrees about the object's +z axis (0 = camera on +x).
        view_elevation: degrees above the object's xy plane.
        view_roll: degrees about the optical axis.
        object_size_frac: larger of the bounding box's width / W and height / H.
        n_distractors: number of distractor bodies.
        color_mode: 0 as loaded, 1 one colour, 2 one colour per link, 3 textured.
        color_hue, color_saturation, color_value: HSV of that colour, 0 .. 1.
        support: 1 puts a plane (table / floor) under the object.
        bar: 1 adds a bar in front of the object.
        source: index into the config's ``sources`` (None: the first).
    """

    view_azimuth: Value
    view_elevation: Value
    object_size_frac: Value
    n_distractors: Value
    view_roll: Value = 0.0
    color_mode: Value = 0
    color_hue: Value = 0.0
    color_saturation: Value = 0.0
    color_value: Value = 0.8
    support: Value = 0
    bar: Value = 0
    source: Optional[Value] = None


@dataclass(frozen=True)
class LightVariables:
    """TinyRenderer's directional light.

    Attributes:
        light_polar: degrees from the camera's -z axis.
        light_azimuth: degrees.
        light_ambient, light_diffuse, light_specular: shading coefficients.
        light_temperature: 0 warm .. 1 cool.
        shadow: 1 renders shadows.
    """

    light_polar: Value
    light_azimuth: Value
    light_ambient: Value
    light_diffuse: Value
    light_specular: Value
    light_temperature: Value
    shadow: Value


@dataclass(frozen=True)
class BackgroundVariables:
    """Background behind the scene and an optional person between.

    Attributes:
        background_type: index into :data:`sim_datagen.scene.textures` kinds.
        background_depth: depth of the background plane, m (its disparity).
        person: 1 composites a person silhouette behind the object.
    """

    background_type: Value
    background_depth: Value
    person: Value


@dataclass(frozen=True)
class ImagingVariables:
    """Camera response and sensor effects.

    Attributes:
        exposure: gain factor (with partial auto-exposure).
        contrast: factor about the mean.
        gamma: display gamma.
        vignetting: 0 .. 1 darkening towards the corners.
        blur_sigma: Gaussian blur, px.
        motion_blur: motion blur kernel length, px.
        noise_sigma: additive noise, grey levels.
        jpeg_quality: JPEG re-compression quality, 1 .. 100.
        grayscale: 1 makes a grey image (replicated to 3 channels).
    """

    exposure: Value
    contrast: Value
    gamma: Value
    vignetting: Value
    blur_sigma: Value
    motion_blur: Value
    noise_sigma: Value
    jpeg_quality: Value
    grayscale: Value


def _groups(scene_kind: str) -> List[type]:
    """Variable groups read by the stages of a scene kind ('checkerboard' or 'urdf')."""
    scene_group = BoardVariables if scene_kind == 'checkerboard' else ObjectViewVariables
    return [RigVariables, PlacementVariables, scene_group, LightVariables,
            BackgroundVariables, ImagingVariables]


def missing_variables(scene_kind: str, names: Sequence[str]) -> List[str]:
    """Return the variables a scene kind needs that are not in ``names``, sorted."""
    have = set(names)
    missing = [f.name for group in _groups(scene_kind) for f in fields(group)
               if f.default is MISSING and f.name not in have]
    if not have & {'fx', 'hfov'}:  # the focal length comes from one of them
        missing.append('fx (or hfov)')
    return sorted(missing)


def _build(group: type, values: Mapping[str, Value]):
    """Fill a variable group from ``{name: value}`` (absent optional fields keep defaults)."""
    return group(**{f.name: values[f.name] for f in fields(group) if f.name in values})


@dataclass(frozen=True)
class SceneVariables:
    """All scene variables of one sample.

    Attributes:
        draws: ``{name: (value, bin)}`` of every sampled variable, in the
            config's order (what the labels record).
        rig, placement, light, background, imaging: the typed groups.
        board: the board group (``scene: checkerboard``), else None.
        object_view: the URDF group (``scene: urdf``), else None.
    """

    draws: Mapping[str, Tuple[Value, int]]
    rig: RigVariables
    placement: PlacementVariables
    light: LightVariables
    background: BackgroundVariables
    imaging: ImagingVariables
    board: Optional[BoardVariables] = None
    object_view: Optional[ObjectViewVariables] = None

    @property
    def by_name(self) -> Mapping[str, Value]:
        """Read-only ``{name: value}``: for variables a config names itself."""
        return MappingProxyType({name: value for name, (value, _) in self.draws.items()})

    def to_labels(self) -> Dict[str, dict]:
        """``{name: {'value': value, 'bin': bin}}`` for the sample's labels."""
        return {name: {'value': value, 'bin': b} for name, (value, b) in self.draws.items()}

    @classmethod
    def from_draws(cls, draws: Mapping[str, Tuple[Value, int]], scene_kind: str
                   ) -> 'SceneVariables':
        """Group ``{name: (value, bin)}`` for a scene kind ('checkerboard' or 'urdf').

        Raises:
            KeyError: a variable the scene kind needs is missing (see
                :func:`missing_variables`, which the generator checks first).
        """
        values = {name: value for name, (value, _) in draws.items()}
        board = _build(BoardVariables, values) if scene_kind == 'checkerboard' else None
        view = _build(ObjectViewVariables, values) if scene_kind == 'urdf' else None
        return cls(MappingProxyType(dict(draws)), _build(RigVariables, values),
                   _build(PlacementVariables, values), _build(LightVariables, values),
                   _build(BackgroundVariables, values), _build(ImagingVariables, values),
                   board, view)


def sample_scene_variables(sampler: SceneSampler, rng: np.random.Generator, scene_kind: str,
                           overrides: Optional[Mapping[str, Value]] = None) -> SceneVariables:
    """Draw every variable of ``sampler`` (in its order) with ``rng``, then apply ``overrides``.

    Args:
        sampler: the scene sampler (its Dirichlet parameters are used, not changed).
        rng: the sample's generator (see :func:`sim_datagen.generator.sample_rng`).
        scene_kind: 'checkerboard' or 'urdf'.
        overrides: ``{name: value}`` fixed after sampling (their bin is
            recomputed; used by tests and for debugging).

    Raises:
        KeyError: an override names a variable the sampler does not have.
    """
    draws = sampler.sample(rng)
    for name, value in (overrides or {}).items():
        draws[name] = (value, sampler[name].bin_of(value))
    return SceneVariables.from_draws(draws, scene_kind)
