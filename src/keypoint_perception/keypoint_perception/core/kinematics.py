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
"""Forward kinematics of a robot's URDF: where its keypoints are, in its base frame.

A robot object class (``objects/panda.yaml``, ``objects/kuka_iiwa.yaml``)
names, per keypoint, the URDF ``link`` it sits on and optionally a
``position`` in that link's frame (metres; default the link origin, which
for a joint's child link is the joint's origin).  :class:`RobotKinematics`
loads a URDF with Pinocchio (Carpentier et al., "The Pinocchio C++ library",
SII 2019; rosdep key ``pinocchio``, pip package ``pin``) and returns those
keypoints' 3D positions for given joint angles.

Frame: the URDF's root link (the robot's *base frame*, e.g. ``panda_link0``),
metres.  Joint values: radians (revolute, continuous), metres (prismatic),
keyed by URDF joint name as in ``sensor_msgs/JointState``.  No ROS import.
"""

from dataclasses import dataclass
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pinocchio
import yaml

from .objects import ObjectClass, OBJECTS_DIR


@dataclass(frozen=True)
class KeypointAnchor:
    """Where one keypoint sits on the robot.

    Attributes:
        name: keypoint name (as in the object class).
        link: URDF link name; None = the URDF's root link.
        offset: (3,) float64 position in that link's frame, metres (zeros =
            the link origin).
    """

    name: str
    link: Optional[str]
    offset: Tuple[float, float, float] = (0.0, 0.0, 0.0)


def keypoint_anchors(object_class: ObjectClass,
                     class_yaml: Optional[str] = None) -> List[KeypointAnchor]:
    """Read each keypoint's ``link`` and ``position`` from the class's YAML file.

    The link names are not part of :class:`~.objects.ObjectClass` (nor of a
    model checkpoint): they are read from ``class_yaml``, by default the
    shipped ``objects/<class name>.yaml``, and matched to the class's
    keypoints by name.

    Args:
        object_class: the class (e.g. a detector's ``object_class``); its
            keypoint order is the order returned.
        class_yaml: path of the class YAML with ``link:`` entries, or None
            for the shipped file of ``object_class.name``.

    Returns:
        One :class:`KeypointAnchor` per keypoint, in the class's order.

    Raises:
        FileNotFoundError: no such YAML file.
        ValueError: the YAML lacks one of the class's keypoints, gives no
            ``link`` for it, or a ``position`` that is not 3 numbers.
    """
    path = class_yaml or os.path.join(OBJECTS_DIR, f'{object_class.name}.yaml')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{path}: no object class YAML with the keypoints\' links')
    with open(path, 'r', encoding='utf-8') as f:
        data = yaml.safe_load(f) or {}
    entries = {str(kp.get('name')): kp for kp in data.get('keypoints', []) or []
               if isinstance(kp, dict)}
    anchors = []
    for name in object_class.keypoint_names:
        if name not in entries:
            raise ValueError(f'{path}: no keypoint {name!r} (class {object_class.name!r})')
        entry = entries[name]
        if not entry.get('link'):
            raise ValueError(f'{path}: keypoint {name!r} has no link: not a robot class')
        offset = entry.get('position') or (0.0, 0.0, 0.0)
        try:
            offset = tuple(float(x) for x in offset)
        except (TypeError, ValueError):
            offset = ()
        if len(offset) != 3 or not np.all(np.isfinite(offset)):
            raise ValueError(f'{path}: keypoint {name!r}: position must be 3 finite numbers '
                             '(m, link frame)')
        anchors.append(KeypointAnchor(name=name, link=str(entry['link']), offset=offset))
    return anchors


class RobotKinematics:
    """Forward kinematics of one URDF (Pinocchio), for keypoint positions in the base frame.

    Attributes:
        base_link: name of the URDF's root link (the base frame).
        joint_names: the movable joints (revolute, continuous, prismatic), in
            the model's order.

    Raises:
        ValueError: from the constructor if the URDF does not parse.
    """

    def __init__(self, urdf: str):
        """Load a URDF from its XML text or from a file path.

        Args:
            urdf: the URDF XML (text starting with ``<``, as the
                ``robot_description`` parameter holds it) or a file path.
                Meshes are not read: kinematics only.

        Raises:
            ValueError: the text or file is not a URDF Pinocchio can read.
            FileNotFoundError: a path that does not exist.
        """
        text = urdf.lstrip()
        try:
            if text.startswith('<'):
                self.model = pinocchio.buildModelFromXML(text)
            else:
                if not os.path.isfile(urdf):
                    raise FileNotFoundError(f'{urdf}: no such URDF file')
                self.model = pinocchio.buildModelFromUrdf(urdf)
        except (RuntimeError, ValueError) as e:
            raise ValueError(f'cannot read the URDF: {" ".join(str(e).split())}') from None
        self.data = self.model.createData()
        root = [f for f in self.model.frames
                if f.type == pinocchio.FrameType.BODY and f.parentJoint == 0]
        if not root:
            raise ValueError('the URDF has no root link')
        self.base_link = root[0].name
        self._joints: Dict[str, int] = {}
        for joint_id in range(1, self.model.njoints):
            self._joints[self.model.names[joint_id]] = joint_id
        self.joint_names: List[str] = list(self._joints)

    def _frame(self, link: Optional[str]) -> int:
        """Pinocchio frame index of a URDF link (None = root link).

        Raises:
            ValueError: unknown link name.
        """
        name = link or self.base_link
        if not self.model.existFrame(name, pinocchio.FrameType.BODY):
            links = sorted(f.name for f in self.model.frames
                           if f.type == pinocchio.FrameType.BODY)
            raise ValueError(f'link {name!r} is not in the URDF; links: {links}')
        return self.model.getFrameId(name, pinocchio.FrameType.BODY)

    def required_joints(self, links: Sequence[Optional[str]]) -> List[str]:
        """Return the movable joints that move any of ``links`` (their chains to the root).

        Raises:
            ValueError: an unknown link name.
        """
        needed = set()
        for link in links:
            parent = self.model.frames[self._frame(link)].parentJoint
            needed.update(j for j in self.model.supports[parent] if j > 0)
        return [self.model.names[j] for j in sorted(needed)]

    def configuration(self, joint_positions: Mapping[str, float]) -> np.ndarray:
        """Return Pinocchio's configuration vector q for joint values by name.

        Joints not given are at 0 (continuous joints are stored as cos, sin).
        Joint limits are not applied: measured joint states are taken as
        they are.

        Args:
            joint_positions: URDF joint name -> radians (revolute, continuous)
                or metres (prismatic).  Names of joints the URDF does not
                have (e.g. a gripper's, when the URDF is the arm alone) are
                ignored.

        Raises:
            ValueError: a non-finite value for one of the URDF's joints.
        """
        q = pinocchio.neutral(self.model)
        for name, value in joint_positions.items():
            joint_id = self._joints.get(name)
            if joint_id is None:
                continue
            value = float(value)
            if not np.isfinite(value):
                raise ValueError(f'joint {name!r} has the non-finite value {value}')
            joint = self.model.joints[joint_id]
            if joint.nq == 1:
                q[joint.idx_q] = value
            elif joint.nq == 2:  # continuous (unbounded) revolute joint: cos, sin
                q[joint.idx_q:joint.idx_q + 2] = (np.cos(value), np.sin(value))
            else:
                raise ValueError(f'joint {name!r} ({joint.shortname()}) is not a single-axis '
                                 'joint')
        return q

    def outside_limits(self, joint_positions: Mapping[str, float],
                       margin: float = 0.1) -> List[str]:
        """Return the joints whose value lies beyond their URDF limits by more than a margin.

        Meant for warnings (degrees given for radians): measured values are
        never clipped.  Continuous joints and names not in the URDF are
        skipped.

        Args:
            joint_positions: URDF joint name -> radians or metres.
            margin: tolerance beyond each limit, radians or metres, at most a
                quarter of the joint's range (a gripper's finger moves 4 cm).
        """
        out = []
        for name, value in joint_positions.items():
            joint_id = self._joints.get(name)
            if joint_id is None or self.model.joints[joint_id].nq != 1:
                continue
            i = self.model.joints[joint_id].idx_q
            lower, upper = self.model.lowerPositionLimit[i], self.model.upperPositionLimit[i]
            tolerance = min(margin, 0.25 * (upper - lower))
            if not lower - tolerance <= float(value) <= upper + tolerance:
                out.append(name)
        return out

    def link_poses(self, joint_positions: Mapping[str, float],
                   links: Sequence[Optional[str]]) -> np.ndarray:
        """Return the (N, 4, 4) poses of URDF link frames in the base frame.

        Args:
            joint_positions: see :meth:`configuration`.
            links: N link names (None = the root link).

        Raises:
            ValueError: an unknown link or a non-finite joint value.
        """
        frames = [self._frame(link) for link in links]
        pinocchio.framesForwardKinematics(self.model, self.data,
                                          self.configuration(joint_positions))
        return np.array([self.data.oMf[f].homogeneous for f in frames], dtype=np.float64)

    def fixed_link_pose(self, link: str) -> Optional[np.ndarray]:
        """Return the (4, 4) float64 pose in the base frame of a link rigidly attached to it.

        For a parent frame other than the root link (e.g. a ``world`` link
        fixed to the robot's base, or the base link under a ``world`` root).

        Returns:
            The pose (metres), or None when the URDF has no link of that
            name.

        Raises:
            ValueError: the link moves with a joint.
        """
        if not self.model.existFrame(link, pinocchio.FrameType.BODY):
            return None
        moving = self.required_joints([link])
        if moving:
            raise ValueError(f'link {link!r} moves with the joints {moving}: not a base frame')
        return self.link_poses({}, [link])[0]

    def keypoint_positions(self, joint_positions: Mapping[str, float],
                           anchors: Sequence[KeypointAnchor]) -> np.ndarray:
        """Return the (J, 3) float64 keypoint positions in the base frame, metres.

        Args:
            joint_positions: URDF joint name -> value (see
                :meth:`configuration`); every joint that moves a keypoint
                must be given.
            anchors: the keypoints (:func:`keypoint_anchors`).

        Raises:
            ValueError: an unknown link, a non-finite joint value, or a
                joint that moves a keypoint missing from ``joint_positions``.
        """
        links = [a.link for a in anchors]
        missing = [j for j in self.required_joints(links) if j not in joint_positions]
        if missing:
            raise ValueError(f'no value for the joints {missing}, which move the keypoints')
        poses = self.link_poses(joint_positions, links)
        offsets = np.array([a.offset for a in anchors], dtype=np.float64).reshape(-1, 3)
        return np.einsum('nij,nj->ni', poses[:, :3, :3], offsets) + poses[:, :3, 3]
