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
"""Object classes described by URDFs: sources, joints, keypoints on links.

The generator config of a URDF class (``scene: urdf``) lists ``sources``;
each is one way of making an instance (see ``src/sim_datagen/README.md`` for
the schema)::

    sources:
      - name: pybullet_mug
        urdf: pybullet_data:objects/mug.urdf     # pybullet_data:<rel> | package:<rel>
                                                 # | procedural:<family> | a file path
        scale: mug_scale                         # globalScaling: number or variable name
        params: {radius: mug_radius, wall: 0.004}   # procedural family parameters
        joints: {drawer_joint: {variable: drawer_opening, mode: fraction}}
        keypoints: {handle: {link: base_link, position: [0, 0.07, 0.05]}}
        visual_decimation: 0.8                   # render decimated visual meshes (file sources)

Keypoints come from the object-class YAML: ``link`` (default: the URDF's
base link) and ``position`` in that link's frame (m, default the link
origin, which for a joint's child link is the joint origin); a source's
``keypoints`` entry replaces them for that source.  Positions scale with
``scale`` like the rest of the model.

Frames: PyBullet reports a base's and a link's *inertial* frames; the
functions here always work with the URDF link frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import os
from typing import Dict, List, Mapping, Optional, Tuple, Union

from keypoint_perception.core.rotations import matrix_from_quaternion, quaternion_from_matrix
import numpy as np
import pybullet as p
import pybullet_data

from . import procedural
from ..config import ConfigError, share_directory

Number = Union[int, float]


def pose_matrix(pos, quat) -> np.ndarray:
    """(4, 4) float64 transform from a position (3,) and an xyzw quaternion."""
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion(quat)
    T[:3, 3] = pos
    return T


def package_dir() -> str:
    """Folder holding this package's ``urdf/`` data (source tree or install share)."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if os.path.isdir(os.path.join(here, 'urdf')):
        return here
    return share_directory('sim_datagen') or here


@dataclass
class JointSpec:
    """How one joint is set per sample.

    Attributes:
        variable: scene variable name, or None for a constant.
        value: the constant (used when ``variable`` is None).
        mode: ``'fraction'`` (0..1 of the URDF limits) or ``'value'``
            (rad / m, clipped to the limits).
    """

    variable: Optional[str]
    value: float = 0.0
    mode: str = 'value'


@dataclass
class UrdfSource:
    """One validated entry of a config's ``sources`` list (see module docstring)."""

    name: str
    kind: str                       # 'file' or 'procedural'
    target: str                     # URDF path, or procedural family name
    spec: str = ''                  # the ``urdf`` string as written in the config
    scale: Union[str, float] = 1.0
    params: Dict[str, Union[str, float]] = field(default_factory=dict)
    joints: Dict[str, JointSpec] = field(default_factory=dict)
    keypoints: Dict[str, Tuple[Optional[str], Optional[List[float]]]] = \
        field(default_factory=dict)
    #: fraction of the visual triangles removed for rendering (file sources), see
    #: :mod:`sim_datagen.scene.decimate`; 0 renders the URDF as it is
    visual_decimation: float = 0.0

    @property
    def cacheable(self) -> bool:
        """Return whether the body may stay loaded between samples (fixed file and scale)."""
        return self.kind == 'file' and not isinstance(self.scale, str)


def _num_or_var(val, where: str, variables: Mapping) -> Union[str, float]:
    if isinstance(val, str):
        if val not in variables:
            raise ConfigError(f'{where}: variable {val!r} is not in `variables`')
        return val
    if isinstance(val, bool) or not isinstance(val, (int, float)):
        raise ConfigError(f'{where}: expected a number or a variable name, got {val!r}')
    return float(val)


def _anchor(entry, where: str) -> Tuple[Optional[str], Optional[List[float]]]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f'{where}: expected a mapping with `link` and/or `position`')
    link = entry.get('link')
    pos = entry.get('position')
    if link is not None and not isinstance(link, str):
        raise ConfigError(f'{where}.link: expected a link name, got {link!r}')
    if pos is not None:
        if (not isinstance(pos, (list, tuple)) or len(pos) != 3
                or not all(isinstance(x, (int, float)) for x in pos)):
            raise ConfigError(f'{where}.position: expected 3 numbers (m), got {pos!r}')
        pos = [float(x) for x in pos]
    return link, pos


def resolve_urdf(spec: str, config_dir: str, where: str) -> Tuple[str, str]:
    """Turn a source's ``urdf`` string into ``(kind, target)``.

    ``pybullet_data:<rel>`` and ``package:<rel>`` (this package's data
    folder) and plain paths (relative to the config file's folder) give
    ``('file', absolute path)``; ``procedural:<family>`` gives
    ``('procedural', family)``.

    Raises:
        ConfigError: unknown family or missing file.
    """
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f'{where}.urdf: expected a string, got {spec!r}')
    if spec.startswith('procedural:'):
        fam = spec.split(':', 1)[1]
        if fam not in procedural.FAMILIES:
            raise ConfigError(f'{where}.urdf: unknown procedural family {fam!r}; '
                              f'known: {sorted(procedural.FAMILIES)}')
        return 'procedural', fam
    if spec.startswith('pybullet_data:'):
        path = os.path.join(pybullet_data.getDataPath(), spec.split(':', 1)[1])
    elif spec.startswith('package:'):
        path = os.path.join(package_dir(), spec.split(':', 1)[1])
    else:
        path = spec if os.path.isabs(spec) else os.path.join(config_dir, spec)
    if not os.path.isfile(path):
        raise ConfigError(f'{where}.urdf: file {path!r} not found')
    return 'file', os.path.normpath(path)


def parse_sources(cfg: Mapping, config_path: str) -> List[UrdfSource]:
    """Validate the ``sources`` of a URDF-class config.

    Args:
        cfg: the parsed config (needs ``sources``, ``variables`` and
            ``object_def``).
        config_path: the config file (for messages and relative paths).

    Returns:
        The sources, in order (bin ``k`` of the ``source`` variable picks
        ``sources[k]``).

    Raises:
        ConfigError: naming the file and field, e.g. a missing ``urdf``, a
            variable name not in ``variables``, a ``source`` variable whose
            choices do not match the source names, a keypoint override for
            an unknown keypoint, or a bad procedural parameter.
    """
    variables = cfg.get('variables', {}) or {}
    raw = cfg.get('sources')
    f = os.path.basename(config_path)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f'{config_path}: `sources` must be a non-empty list')
    kp_names = [k['name'] for k in cfg['object_def']['keypoints']]
    out = []
    for i, s in enumerate(raw):
        where = f'{f}: sources[{i}]'
        if not isinstance(s, Mapping) or 'urdf' not in s:
            raise ConfigError(f'{where}: needs a `urdf` entry')
        unknown = set(s) - {'name', 'urdf', 'scale', 'params', 'joints', 'keypoints',
                            'visual_decimation'}
        if unknown:
            raise ConfigError(f'{where}: unknown key(s) {sorted(unknown)}')
        kind, target = resolve_urdf(s['urdf'], os.path.dirname(os.path.abspath(config_path)),
                                    where)
        src = UrdfSource(str(s.get('name', f'source_{i}')), kind, target, str(s['urdf']),
                         _num_or_var(s.get('scale', 1.0), f'{where}.scale', variables))
        dec = s.get('visual_decimation', 0.0)
        if (isinstance(dec, bool) or not isinstance(dec, (int, float)) or not 0 <= dec < 1
                or (dec and kind != 'file')):
            raise ConfigError(f'{where}.visual_decimation: expected a number in [0, 1) for a '
                              f'URDF file source, got {dec!r}')
        src.visual_decimation = float(dec)
        params = s.get('params', {}) or {}
        if params and kind != 'procedural':
            raise ConfigError(f'{where}.params: only procedural sources take parameters')
        for k, val in params.items():
            src.params[k] = _num_or_var(val, f'{where}.params.{k}', variables)
        if kind == 'procedural':
            known = procedural.FAMILY_DEFAULTS[target]
            bad = sorted(set(src.params) - set(known))
            if bad:
                raise ConfigError(f'{where}.params: unknown parameter(s) {bad} of family '
                                  f'{target!r}; known: {sorted(known)}')
        for jn, js in (s.get('joints', {}) or {}).items():
            jw = f'{where}.joints.{jn}'
            if isinstance(js, (int, float, str)) and not isinstance(js, bool):
                js = {'value': js} if not isinstance(js, str) else {'variable': js}
            if not isinstance(js, Mapping):
                raise ConfigError(f'{jw}: expected {{variable: name, mode: fraction|value}}')
            mode = js.get('mode', 'value')
            if mode not in ('fraction', 'value'):
                raise ConfigError(f'{jw}.mode: expected fraction or value, got {mode!r}')
            var = js.get('variable')
            if var is not None and var not in variables:
                raise ConfigError(f'{jw}.variable: {var!r} is not in `variables`')
            val = js.get('value', 0.0)
            if not isinstance(val, (int, float)):
                raise ConfigError(f'{jw}.value: expected a number, got {val!r}')
            src.joints[str(jn)] = JointSpec(var, float(val), mode)
        for kn, entry in (s.get('keypoints', {}) or {}).items():
            if kn not in kp_names:
                raise ConfigError(f'{where}.keypoints: {kn!r} is not a keypoint of the class '
                                  f'(keypoints: {kp_names})')
            src.keypoints[kn] = _anchor(entry, f'{where}.keypoints.{kn}')
        out.append(src)
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError(f'{f}: source names must be unique, got {names}')
    if 'source' in variables:
        ch = variables['source'].get('choices')
        if ch != names:
            raise ConfigError(f'{f}: variables.source.choices must list the source names in '
                              f'order {names}, got {ch!r}')
    elif len(out) > 1:
        raise ConfigError(f'{f}: several sources need a categorical `source` variable '
                          f'(choices: {names})')
    return out


def class_anchors(object_def: Mapping, object_yaml: str
                  ) -> List[Tuple[str, Optional[str], Optional[List[float]]]]:
    """``(name, link, position)`` per keypoint of an object-class YAML.

    Raises:
        ConfigError: a keypoint's ``link`` / ``position`` is malformed.
    """
    out = []
    for i, kp in enumerate(object_def['keypoints']):
        link, pos = _anchor(kp, f'{object_yaml}: keypoints[{i}] ({kp.get("name")})')
        out.append((kp['name'], link, pos))
    return out


class UrdfInstance:
    """A loaded URDF body: link frames, joints, keypoints, bounding box.

    Args:
        body: PyBullet body id.
        cid: physics client id.
        scale: the ``globalScaling`` it was loaded with.
    """

    def __init__(self, body: int, cid: int, scale: float = 1.0):
        self.body, self.cid, self.scale = body, cid, float(scale)
        info = p.getBodyInfo(body, physicsClientId=cid)
        self.base_name = info[0].decode()
        self.links: Dict[str, int] = {self.base_name: -1}
        self.joints: Dict[str, Tuple[int, int, float, float]] = {}
        for j in range(p.getNumJoints(body, physicsClientId=cid)):
            ji = p.getJointInfo(body, j, physicsClientId=cid)
            self.links[ji[12].decode()] = j
            self.joints[ji[1].decode()] = (j, ji[2], float(ji[8]), float(ji[9]))
        dyn = p.getDynamicsInfo(body, -1, physicsClientId=cid)
        self._T_base_inertial = pose_matrix(dyn[3], dyn[4])

    # -- pose and joints -------------------------------------------------
    def set_base_pose(self, T_world_base: np.ndarray) -> None:
        """Place the base *link* frame at ``T_world_base`` (4, 4)."""
        T = T_world_base @ self._T_base_inertial
        p.resetBasePositionAndOrientation(self.body, T[:3, 3].tolist(),
                                          quaternion_from_matrix(T[:3, :3]).tolist(),
                                          physicsClientId=self.cid)

    def set_joints(self, positions: Mapping[str, float]) -> Dict[str, float]:
        """Reset every movable joint: the given ones, the others to 0 (clipped to limits).

        Args:
            positions: joint name -> rad or m.

        Returns:
            The values set, {joint name: value}, all movable joints.

        Raises:
            KeyError: a name that is not a movable joint of the body.
        """
        bad = [n for n in positions if n not in self.joints
               or self.joints[n][1] not in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)]
        if bad:
            movable = [n for n, j in self.joints.items()
                       if j[1] in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC)]
            raise KeyError(f'not movable joints of the URDF: {bad}; movable: {movable}')
        out = {}
        for n, (j, typ, lo, hi) in self.joints.items():
            if typ not in (p.JOINT_REVOLUTE, p.JOINT_PRISMATIC):
                continue
            q = float(positions.get(n, 0.0))
            if hi > lo:
                q = float(np.clip(q, lo, hi))
            p.resetJointState(self.body, j, q, physicsClientId=self.cid)
            out[n] = q
        return out

    def joint_value(self, name: str, spec: JointSpec, variables: Mapping[str, float]) -> float:
        """Joint position for ``spec`` (``fraction`` maps 0..1 onto the URDF limits)."""
        x = float(variables[spec.variable]) if spec.variable else spec.value
        if spec.mode == 'fraction':
            _, _, lo, hi = self.joints[name]
            return lo + x * (hi - lo)
        return x

    # -- frames --------------------------------------------------------------
    def link_frame(self, link: str) -> np.ndarray:
        """(4, 4) pose of a URDF link frame in the world.

        Raises:
            KeyError: unknown link name.
        """
        if link not in self.links:
            raise KeyError(f'link {link!r} not in the URDF; links: {sorted(self.links)}')
        j = self.links[link]
        if j < 0:
            pos, q = p.getBasePositionAndOrientation(self.body, physicsClientId=self.cid)
            return pose_matrix(pos, q) @ np.linalg.inv(self._T_base_inertial)
        st = p.getLinkState(self.body, j, computeForwardKinematics=1, physicsClientId=self.cid)
        return pose_matrix(st[4], st[5])

    def points(self, anchors) -> np.ndarray:
        """World positions (J, 3) of ``(link, position)`` anchors (m).

        ``link`` None = base link, ``position`` None = link origin;
        positions are in the unscaled URDF units and scaled by ``scale``.
        """
        out = np.zeros((len(anchors), 3))
        for i, (link, pos) in enumerate(anchors):
            T = self.link_frame(link or self.base_name)
            x = np.zeros(3) if pos is None else self.scale * np.asarray(pos, np.float64)
            out[i] = T[:3, :3] @ x + T[:3, 3]
        return out

    def aabb(self) -> np.ndarray:
        """(2, 3) world bounding box (min, max) over all links' collision shapes, m."""
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for j in self.links.values():
            a, b = p.getAABB(self.body, j, physicsClientId=self.cid)
            a, b = np.asarray(a), np.asarray(b)
            if np.all(b >= a) and np.all(np.isfinite(a)) and np.any(b > a):
                lo, hi = np.minimum(lo, a), np.maximum(hi, b)
        if not np.all(np.isfinite(lo)):
            T = self.link_frame(self.base_name)
            lo, hi = T[:3, 3] - 0.05, T[:3, 3] + 0.05
        return np.stack([lo, hi])

    # -- appearance ------------------------------------------------------------
    def visual_links(self) -> List[int]:
        """Link indices that have visual shapes (-1 = base), sorted."""
        vs = p.getVisualShapeData(self.body, physicsClientId=self.cid)
        return sorted({int(shape[1]) for shape in vs})

    def set_color(self, link: int, rgba, tex: Optional[int] = None) -> None:
        """Set a link's colour (4 floats) and optionally a texture id."""
        kw = {'rgbaColor': [float(c) for c in rgba]}
        if tex is not None:
            kw['textureUniqueId'] = int(tex)
        p.changeVisualShape(self.body, link, physicsClientId=self.cid, **kw)


def write_procedural(src: UrdfSource, variables: Optional[Mapping[str, float]],
                     out_dir: str, stem: str) -> str:
    """Write the URDF of a procedural source for the sampled ``variables``.

    ``variables`` None writes the family's default instance.  Returns the
    URDF path (``<out_dir>/<stem>.urdf``).
    """
    if variables is None:
        return procedural.FAMILIES[src.target]({}, out_dir, stem)
    params = {name: (float(variables[value]) if isinstance(value, str) else value)
              for name, value in src.params.items()}
    return procedural.FAMILIES[src.target](params, out_dir, stem)
