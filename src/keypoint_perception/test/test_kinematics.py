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
"""Tests of keypoint_perception.core.kinematics (oracle: PyBullet's own link states)."""

import os

from keypoint_perception.core.kinematics import (KeypointAnchor, keypoint_anchors,
                                                 RobotKinematics)
from keypoint_perception.core.objects import load_object_class
import numpy as np
import pybullet
import pybullet_data
import pytest

#: object class -> URDF in pybullet_data (the files the classes are rendered from)
ROBOTS = {'panda': 'franka_panda/panda.urdf', 'kuka_iiwa': 'kuka_iiwa/model.urdf'}


def _pybullet_keypoints(urdf_path, anchors, joint_positions):
    """Keypoints in the base link frame from PyBullet's link states (the oracle)."""
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(urdf_path, [0, 0, 0], [0, 0, 0, 1], useFixedBase=True,
                                 physicsClientId=client)
        links = {pybullet.getBodyInfo(body, physicsClientId=client)[0].decode(): -1}
        for j in range(pybullet.getNumJoints(body, physicsClientId=client)):
            info = pybullet.getJointInfo(body, j, physicsClientId=client)
            links[info[12].decode()] = j
            name = info[1].decode()
            if name in joint_positions:
                pybullet.resetJointState(body, j, joint_positions[name], physicsClientId=client)
        out = []
        for anchor in anchors:
            state = pybullet.getLinkState(body, links[anchor.link], computeForwardKinematics=1,
                                          physicsClientId=client)
            R = np.array(pybullet.getMatrixFromQuaternion(state[5])).reshape(3, 3)
            out.append(R @ np.asarray(anchor.offset) + np.asarray(state[4]))
        return np.array(out)
    finally:
        pybullet.disconnect(client)


@pytest.mark.parametrize('robot', sorted(ROBOTS))
def test_forward_kinematics_matches_pybullet_link_states(robot):
    """Keypoints of random joint angles equal PyBullet's link frames (base at identity)."""
    path = os.path.join(pybullet_data.getDataPath(), ROBOTS[robot])
    object_class = load_object_class(robot)
    anchors = keypoint_anchors(object_class)
    # an offset keypoint too: a point off the last link's origin
    anchors.append(KeypointAnchor('offset', anchors[-1].link, (0.03, -0.02, 0.05)))
    with open(path) as f:
        kinematics = RobotKinematics(f.read())  # from the XML text, as robot_description
    assert RobotKinematics(path).joint_names == kinematics.joint_names
    rng = np.random.default_rng(3)
    for _ in range(5):
        q = {name: float(rng.uniform(-2.5, 2.5)) for name in kinematics.joint_names}
        ours = kinematics.keypoint_positions(q, anchors)
        theirs = _pybullet_keypoints(path, anchors, q)
        assert ours.shape == (object_class.num_keypoints + 1, 3)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)
        # the keypoints move with the joints: not a constant
        assert np.ptp(ours, axis=0).max() > 0.1


def test_anchors_follow_the_class_yaml():
    """The shipped panda class names its links in keypoint order."""
    anchors = keypoint_anchors(load_object_class('panda'))
    assert [a.link for a in anchors][:2] == ['panda_link1', 'panda_link3']
    assert anchors[-1].name == 'grasp' and anchors[-1].link == 'panda_grasptarget'
    assert all(a.offset == (0.0, 0.0, 0.0) for a in anchors)


def test_missing_joint_and_unknown_link_are_errors():
    """A joint that moves a keypoint must be given; a link must exist."""
    path = os.path.join(pybullet_data.getDataPath(), ROBOTS['kuka_iiwa'])
    kinematics = RobotKinematics(path)
    anchors = keypoint_anchors(load_object_class('kuka_iiwa'))
    q = {name: 0.1 for name in kinematics.joint_names}
    del q['lbr_iiwa_joint_7']
    with pytest.raises(ValueError, match='lbr_iiwa_joint_7'):
        kinematics.keypoint_positions(q, anchors)
    # the first keypoint needs joint 1 only
    assert kinematics.required_joints(['lbr_iiwa_link_1']) == ['lbr_iiwa_joint_1']
    with pytest.raises(ValueError, match='not in the URDF'):
        kinematics.link_poses({}, ['no_such_link'])
    with pytest.raises(ValueError, match='non-finite'):
        kinematics.configuration({'lbr_iiwa_joint_1': float('nan')})
    with pytest.raises(ValueError, match='URDF'):
        RobotKinematics('<robot name="broken"><link name="a"/><joint/></robot>')


def test_checkerboard_is_not_a_robot():
    """A class without links is refused with a clear message."""
    with pytest.raises(ValueError, match='no link'):
        keypoint_anchors(load_object_class('checkerboard'))


def test_fixed_link_pose_of_a_world_link():
    """A link fixed to the root has a pose; a moving link is no base frame; unknown is None."""
    urdf = '''<robot name="arm">
      <link name="base"/><link name="world"/><link name="upper"/>
      <joint name="to_world" type="fixed"><parent link="base"/><child link="world"/>
        <origin xyz="0.1 -0.2 0.3" rpy="0 0 1.5707963267948966"/></joint>
      <joint name="shoulder" type="revolute"><parent link="base"/><child link="upper"/>
        <axis xyz="0 0 1"/><limit lower="-3" upper="3" effort="1" velocity="1"/></joint>
    </robot>'''
    kinematics = RobotKinematics(urdf)
    assert kinematics.base_link == 'base'
    pose = kinematics.fixed_link_pose('world')
    np.testing.assert_allclose(pose[:3, 3], [0.1, -0.2, 0.3], atol=1e-12)
    np.testing.assert_allclose(pose[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(kinematics.fixed_link_pose('base'), np.eye(4), atol=1e-12)
    assert kinematics.fixed_link_pose('elsewhere') is None
    with pytest.raises(ValueError, match='shoulder'):
        kinematics.fixed_link_pose('upper')
