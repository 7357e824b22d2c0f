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
"""The calibration node and the mono keypoint node over real DDS (localhost, own domain id).

robot_calibration_node: the Panda's URDF on ``robot_description`` (latched,
as robot_state_publisher sends it), ``joint_states`` and keypoints of the
Panda seen by a camera under a known transform (3D in stereo mode; 2D +
camera_info in mono mode) go in; the TF ``panda_link0`` -> camera frame and
``camera_pose`` must be that transform.

mono_keypoint_node: a rendered board image + camera_info in, keypoints_2d
near the renderer's labels out.
"""

import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '162'

import rclpy  # noqa: E402

from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point, PoseWithCovarianceStamped  # noqa: E402
from keypoint_msgs.msg import (Keypoint2D, Keypoint3D, Keypoints3D, ObjectKeypoints2D,  # noqa: E402,E501
                               ObjectKeypoints3D, StereoKeypoints2D, ViewKeypoints2D)
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from tf2_msgs.msg import TFMessage  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'src', 'sim_datagen'))

from keypoint_perception.core.calibration_metrics import pose_errors  # noqa: E402
from keypoint_perception.core.camera import CameraModel  # noqa: E402
from keypoint_perception.core.distortion import unrectify_points  # noqa: E402
from keypoint_perception.core.kinematics import keypoint_anchors, RobotKinematics  # noqa: E402
from keypoint_perception.core.objects import load_object_class  # noqa: E402
from keypoint_perception.core.robot_calibration import transform_points  # noqa: E402
from keypoint_perception.core.rotations import matrix_from_quaternion  # noqa: E402
from keypoint_perception.demo import node_command  # noqa: E402
from keypoint_perception.nodes.conversions import camera_info_msg  # noqa: E402
import pybullet_data  # noqa: E402

PANDA_URDF = os.path.join(pybullet_data.getDataPath(), 'franka_panda', 'panda.urdf')
CAMERA = CameraModel(width=640, height=480, K=[[600, 0, 320], [0, 600, 240], [0, 0, 1]],
                     D=[-0.2, 0.05, 0, 0, 0], distortion_model='plumb_bob', R=np.eye(3),
                     P=[[600, 0, 320, 0], [0, 600, 240, 0], [0, 0, 1, 0]],
                     frame_id='camera_optical')
RIGHT_CAMERA = CameraModel(width=640, height=480, K=[[600, 0, 320], [0, 600, 240], [0, 0, 1]],
                           D=[-0.2, 0.05, 0, 0, 0], distortion_model='plumb_bob', R=np.eye(3),
                           P=[[600, 0, 320, -60.0], [0, 600, 240, 0], [0, 0, 1, 0]],
                           frame_id='right_optical')  # 10 cm baseline


def _view(object_class, uv, frame_id):
    return ViewKeypoints2D(frame_id=frame_id, width=640, height=480, objects=[ObjectKeypoints2D(
        class_name='panda', instance_id='0', keypoints=[
            Keypoint2D(name=name, x=u, y=v, confidence=0.9, valid=True)
            for name, (u, v) in zip(object_class.keypoint_names, uv)])])


#: A root link above the Panda's base, as MoveIt configurations add it.
WORLD_ROOT = ('<link name="world"/><joint name="world_to_base" type="fixed">'
              '<parent link="world"/><child link="panda_link0"/>'
              '<origin xyz="0.4 -0.3 0.75" rpy="0 0 0.6"/></joint>')
#: Latched QoS, as robot_state_publisher and static TF broadcasters use.
LATCHED = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def _publish_urdf(node, world_root=False):
    """Publish the Panda URDF on a latched robot_description; returns the publisher.

    ``world_root``: with a ``world`` root link fixed above ``panda_link0``
    (:data:`WORLD_ROOT`).
    """
    publisher = node.create_publisher(String, 'robot_description', LATCHED)
    with open(PANDA_URDF) as f:
        urdf = f.read()
    if world_root:
        head, tail = urdf.split('<link name="panda_link0">', 1)
        urdf = f'{head}{WORLD_ROOT}<link name="panda_link0">{tail}'
    publisher.publish(String(data=urdf))
    return publisher


def _tf_subscription(node, static, received):
    """Collect TFMessages of /tf_static (latched) or /tf into ``received``."""
    if static:
        return node.create_subscription(TFMessage, '/tf_static', received.append, LATCHED)
    return node.create_subscription(TFMessage, '/tf', received.append, 100)


def _tf_matrix(transform) -> np.ndarray:
    """(4, 4) matrix of a geometry_msgs/TransformStamped (parent <- child)."""
    tr, rot = transform.transform.translation, transform.transform.rotation
    T = np.eye(4)
    T[:3, :3] = matrix_from_quaternion([rot.x, rot.y, rot.z, rot.w])
    T[:3, 3] = [tr.x, tr.y, tr.z]
    return T


def _t_true():
    import cv2
    T = np.eye(4)  # the camera 1.5 m away, looking at the robot from the side
    T[:3, :3] = cv2.Rodrigues(np.array([1.9, 0.0, 0.0]))[0]
    T[:3, 3] = [0.05, 0.2, 1.5]
    return T


@pytest.fixture(scope='module')
def ros_node():
    rclpy.init()
    node = rclpy.create_node('robot_calibration_test')
    yield node
    node.destroy_node()
    rclpy.shutdown()


@pytest.fixture
def ros(ros_node):
    """The module's node; the publishers and subscriptions a test made are destroyed after it.

    The node keeps every publisher it created alive, and a latched one goes on serving
    its last message: a later test's calibration node would also receive an earlier
    test's ``robot_description`` (a world-rooted URDF, whose root then became the TF
    parent) in whichever order DDS delivered the two.
    """
    publishers, subscriptions = set(ros_node.publishers), set(ros_node.subscriptions)
    yield ros_node
    for publisher in set(ros_node.publishers) - publishers:
        ros_node.destroy_publisher(publisher)
    for subscription in set(ros_node.subscriptions) - subscriptions:
        ros_node.destroy_subscription(subscription)


def _start(name, params, tmp_path):
    log_path = tmp_path / f'{name}.log'
    log = open(log_path, 'w')
    cmd = node_command(name) + ['--ros-args']
    for kv in params:
        cmd += ['-p', kv]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, log_path


def _stop(proc, log):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _spin_until(node, condition, proc, log_path, timeout=60.0):
    deadline = time.time() + timeout
    while not condition():
        rclpy.spin_once(node, timeout_sec=0.05)
        assert proc.poll() is None, open(log_path).read()
        if time.time() > deadline:
            return False
    return True


@pytest.mark.parametrize('mode,fit,static,world_root', [
    ('stereo', 'reprojection', True, False), ('stereo', 'rigid', True, True),
    ('mono', 'reprojection', False, False)])
def test_calibration_node_publishes_the_known_transform(ros, tmp_path, mode, fit, static,
                                                        world_root):
    """Each mode and fit; TF on /tf_static or /tf; a world-rooted URDF with base_frame."""
    node = ros
    params = [f'mode:={mode}', f'stereo_fit:={fit}', 'object_class:=panda', 'window_size:=10',
              'input_rectified:=false',  # raw pixels (stereo's default: rectified)
              f'static_tf:={str(static).lower()}']
    if world_root:  # the keypoints' kinematics are in world; the TF parent is panda_link0
        params.append('base_frame:=panda_link0')
    proc, log, log_path = _start('robot_calibration_node', params, tmp_path)
    rigid = mode == 'stereo' and fit == 'rigid'
    try:
        _publish_urdf(node, world_root)  # kept by the node until the test ends: latched
        pub_joints = node.create_publisher(JointState, 'joint_states', 10)
        pub_kp = node.create_publisher(Keypoints3D if rigid else StereoKeypoints2D,
                                       'keypoints_3d' if rigid else 'keypoints_2d', 10)
        pub_info = node.create_publisher(CameraInfo, 'camera_info', 10)
        pub_left_info = node.create_publisher(CameraInfo, 'left/camera_info', 10)
        pub_right_info = node.create_publisher(CameraInfo, 'right/camera_info', 10)
        tfs, poses = [], []
        _tf_subscription(node, static, tfs)
        node.create_subscription(PoseWithCovarianceStamped, 'camera_pose', poses.append, 10)
        assert _spin_until(node, lambda: pub_kp.get_subscription_count() > 0 and
                           pub_joints.get_subscription_count() > 0, proc, log_path), \
            open(log_path).read()
        assert _spin_until(node, lambda: 'URDF loaded' in open(log_path).read(), proc, log_path,
                           timeout=20), open(log_path).read()

        kinematics = RobotKinematics(PANDA_URDF)
        object_class = load_object_class('panda')
        anchors = keypoint_anchors(object_class)
        T_true = _t_true()
        rng = np.random.default_rng(2)
        for n in range(6):
            stamp = Time(sec=100 + n, nanosec=5000)
            q = {j: float(rng.uniform(-0.8, 0.8)) for j in kinematics.joint_names}
            q['panda_joint4'] = float(rng.uniform(-2.5, -1.0))
            names = [f'panda_joint{k}' for k in range(1, 8)]
            joints = JointState(name=names, position=[q[j] for j in names])
            joints.header.stamp = Time(sec=100 + n, nanosec=2000)  # 3 us before the image
            pub_joints.publish(joints)
            camera_points = transform_points(T_true, kinematics.keypoint_positions(q, anchors))
            if rigid:
                camera_points += rng.normal(0, 0.002, camera_points.shape)
                msg = Keypoints3D(objects=[ObjectKeypoints3D(
                    class_name='panda', instance_id='0', keypoints=[
                        Keypoint3D(name=name, position=Point(x=x, y=y, z=z), confidence=0.9,
                                   valid=True, reprojection_error=0.5)
                        for name, (x, y, z) in zip(object_class.keypoint_names,
                                                   camera_points)])])
            elif mode == 'stereo':
                pub_left_info.publish(camera_info_msg(CAMERA, stamp))
                pub_right_info.publish(camera_info_msg(RIGHT_CAMERA, stamp))
                # left R = I, centre 0: the left rectified frame is the optical frame
                uv_left, uv_right = (unrectify_points(camera, camera_points)
                                     + rng.normal(0, 0.5, (7, 2))
                                     for camera in (CAMERA, RIGHT_CAMERA))
                msg = StereoKeypoints2D(left=_view(object_class, uv_left, 'camera_optical'),
                                        right=_view(object_class, uv_right, 'right_optical'))
            else:
                pub_info.publish(camera_info_msg(CAMERA, stamp))
                uv = unrectify_points(CAMERA, camera_points) + rng.normal(0, 0.5, (7, 2))
                msg = StereoKeypoints2D(left=_view(object_class, uv, 'camera_optical'))
            msg.header.stamp, msg.header.frame_id = stamp, 'camera_optical'
            time.sleep(0.1)  # joint state and camera_info first
            pub_kp.publish(msg)
            assert _spin_until(node, lambda: any(p.header.stamp.sec == 100 + n for p in poses)
                               and any(t.header.stamp.sec == 100 + n
                                       for m in tfs for t in m.transforms),
                               proc, log_path, timeout=20), open(log_path).read()
        last = [t for m in tfs for t in m.transforms if t.header.stamp.sec == 105
                and t.child_frame_id == 'camera_optical']
        assert last, open(log_path).read()
        # every camera transform of that stamp has the robot's base as parent
        assert {t.header.frame_id for t in last} == {'panda_link0'}, \
            [(t.header.frame_id, t.child_frame_id) for t in last]
        tf = last[-1]
        tr = tf.transform.translation
        dt, dr = pose_errors(np.linalg.inv(_tf_matrix(tf)), T_true)
        assert dt < 0.01 and np.degrees(dr) < 0.5, (dt, np.degrees(dr))
        pose = [p for p in poses if p.header.stamp.sec == 105][-1]
        assert pose.header.frame_id == 'panda_link0'
        # the node saw this test's URDF only (no latched one of an earlier test)
        loads = [line.split('URDF loaded: ', 1)[1] for line in open(log_path)
                 if 'URDF loaded: ' in line]
        root = 'world' if world_root else 'panda_link0'
        assert [load.split(',')[0] for load in loads] == [f'base link {root}'], loads
        assert pose.pose.pose.position.x == pytest.approx(tr.x)
        covariance = np.array(pose.pose.covariance).reshape(6, 6)
        assert np.all(np.diag(covariance) > 0) and np.all(np.diag(covariance) < 1e-2)
    finally:
        _stop(proc, log)


def test_mono_keypoint_node_on_a_rendered_image(ros, tmp_path):
    from sim_datagen.config import load_config
    from sim_datagen.generator import SampleGenerator
    from keypoint_perception.training.metrics import symmetric_errors
    from test_robot_calibration_cli import BOARD
    gen = SampleGenerator(load_config(os.path.join(ROOT, 'src', 'sim_datagen', 'config',
                                                   'checkerboard.yaml')))
    try:
        sample = gen.generate(3, seed=5, overrides=BOARD)
    finally:
        gen.world.close()
    node = ros
    proc, log, log_path = _start('mono_keypoint_node', [
        'model:=checkerboard_lite', 'reliable_qos:=true', 'backend:=torch'], tmp_path)
    try:
        pub_image = node.create_publisher(Image, 'image', 10)
        pub_info = node.create_publisher(CameraInfo, 'camera_info', 10)
        got = []
        node.create_subscription(StereoKeypoints2D, 'keypoints_2d', got.append, 10)
        assert _spin_until(node, lambda: pub_image.get_subscription_count() > 0 and
                           pub_info.get_subscription_count() > 0, proc, log_path, 120)
        time.sleep(1.0)
        info = sample['labels']['camera_info']['left']
        camera = CameraModel(width=info['width'], height=info['height'], K=info['K'],
                             D=info['D'], distortion_model=info['distortion_model'],
                             R=info['R'], P=info['P'], frame_id='cam')
        # a negative stamp is dropped before the synchronizer (upstream's would raise)
        bad = Image(height=480, width=640, encoding='rgb8', step=640 * 3,
                    data=sample['left'].tobytes())
        bad.header.stamp, bad.header.frame_id = Time(sec=-3), 'cam'
        pub_image.publish(bad)
        stamp = Time(sec=7)
        image = Image(height=480, width=640, encoding='rgb8', step=640 * 3,
                      data=sample['left'].tobytes())
        image.header.stamp, image.header.frame_id = stamp, 'cam'
        pub_image.publish(image)
        pub_info.publish(camera_info_msg(camera, stamp))
        assert _spin_until(node, lambda: got, proc, log_path, 60), open(log_path).read()
        assert 'negative_stamp' in open(log_path).read()
        # a 2x2 binning camera: CameraInfo keeps the full resolution, images are 320x240
        binned = cv2.resize(sample['left'], (320, 240), interpolation=cv2.INTER_AREA)
        small = Image(height=240, width=320, encoding='rgb8', step=320 * 3,
                      data=binned.tobytes())
        small.header.stamp, small.header.frame_id = Time(sec=8), 'cam'
        binned_info = camera_info_msg(camera, Time(sec=8))
        binned_info.binning_x = binned_info.binning_y = 2
        pub_image.publish(small)
        pub_info.publish(binned_info)
        assert _spin_until(node, lambda: len(got) >= 2, proc, log_path, 60), \
            open(log_path).read()
        assert (got[1].header.stamp.sec, got[1].left.width, got[1].left.height) == (8, 320, 240)
        msg = got[0]
        assert msg.header.stamp.sec == 7 and msg.header.frame_id == 'cam'
        assert (msg.left.width, msg.left.height) == (640, 480) and not msg.right.objects
        (obj,) = msg.left.objects
        uv = np.array([[k.x, k.y] for k in obj.keypoints])
        truth = np.asarray(sample['labels']['keypoints_2d']['left'])
        board = load_object_class('checkerboard')
        assert symmetric_errors(uv, truth, board.symmetries).max() < 1.5 * 4 * 640 / 256
        assert 'backend torch' in open(log_path).read()  # the backend parameter is declared
    finally:
        _stop(proc, log)


def test_calibration_node_on_rendered_stereo_pairs(ros, tmp_path):
    """Rendered Panda stereo pairs: their labels' 2D keypoints, CameraInfos and joints in.

    Checks the conventions end to end (renderer's cameras and URDF, CameraInfo
    conversion, FK, the node's stereo reprojection fit): with exact keypoints
    the TF must be the renderer's ``T_camera_base`` within 2 mm and 0.05 deg.
    ``window_size`` 1: each pair has its own camera.  The keypoints are sent as
    pixels of the rectified images, as the stereo keypoint node sends them with
    its default ``input_rectified: true`` (the calibration node's stereo default).
    """
    from sim_datagen.config import load_config
    from sim_datagen.generator import SampleGenerator
    from keypoint_perception.core.dataset import camera_model_from_label
    from keypoint_perception.core.distortion import rectify_points
    gen = SampleGenerator(load_config(os.path.join(ROOT, 'src', 'sim_datagen', 'config',
                                                   'panda.yaml')))
    try:
        samples = [gen.generate(i, seed=21, overrides={'out_of_view': 0, 'person': 0})
                   for i in range(2)]
    finally:
        gen.world.close()
    node = ros
    proc, log, log_path = _start('robot_calibration_node', [
        'mode:=stereo', 'object_class:=panda', 'window_size:=1',
        'camera_frame:=left_calibrated'], tmp_path)
    object_class = load_object_class('panda')
    try:
        _publish_urdf(node)  # kept by the node until the test ends: latched
        pub_joints = node.create_publisher(JointState, 'joint_states', 10)
        pub_kp = node.create_publisher(StereoKeypoints2D, 'keypoints_2d', 10)
        pub_info = {view: node.create_publisher(CameraInfo, f'{view}/camera_info', 10)
                    for view in ('left', 'right')}
        tfs = []
        _tf_subscription(node, True, tfs)
        assert _spin_until(node, lambda: pub_kp.get_subscription_count() > 0 and
                           pub_info['right'].get_subscription_count() > 0, proc, log_path)
        assert _spin_until(node, lambda: 'URDF loaded' in open(log_path).read(), proc, log_path,
                           timeout=20), open(log_path).read()
        for n, sample in enumerate(samples):
            labels = sample['labels']
            assert labels['object']['urdf'].endswith('franka_panda/panda.urdf')
            assert labels['object'].get('scale', 1.0) == 1.0
            stamp = Time(sec=200 + n)
            joints = JointState(name=list(labels['object']['joints']),
                                position=[float(v) for v in labels['object']['joints'].values()])
            joints.header.stamp = stamp
            pub_joints.publish(joints)
            views = {}
            for view in ('left', 'right'):
                camera = camera_model_from_label(labels['camera_info'][view])
                pub_info[view].publish(camera_info_msg(camera, stamp))
                uv = rectify_points(camera, np.asarray(labels['keypoints_2d'][view],
                                                       dtype=np.float64))
                seen = np.asarray(labels['visibility'][view]) > 0
                views[view] = ViewKeypoints2D(
                    frame_id=camera.frame_id, width=camera.width, height=camera.height,
                    objects=[ObjectKeypoints2D(class_name='panda', instance_id='0', keypoints=[
                        Keypoint2D(name=name, x=float(u), y=float(v), confidence=0.9,
                                   valid=bool(ok))
                        for name, (u, v), ok in zip(object_class.keypoint_names, uv, seen)])])
            msg = StereoKeypoints2D(left=views['left'], right=views['right'])
            msg.header.stamp = stamp
            msg.header.frame_id = labels['camera_info']['left']['frame_id']
            time.sleep(0.2)  # joint state and camera_info first
            pub_kp.publish(msg)
            assert _spin_until(node, lambda: any(t.header.stamp.sec == 200 + n
                                                 for m in tfs for t in m.transforms),
                               proc, log_path, timeout=20), open(log_path).read()
            tf = [t for m in tfs for t in m.transforms if t.header.stamp.sec == 200 + n][-1]
            assert tf.header.frame_id == 'panda_link0'
            assert tf.child_frame_id == 'left_calibrated'
            dt, dr = pose_errors(np.linalg.inv(_tf_matrix(tf)),
                                 np.asarray(labels['object_pose']))
            assert dt < 0.002 and np.degrees(dr) < 0.05, (n, dt, np.degrees(dr))
    finally:
        _stop(proc, log)
