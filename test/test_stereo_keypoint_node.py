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
"""The perception node over real DDS (localhost only, own domain id).

A stereo pair rendered by sim_datagen goes in as Image + CameraInfo; the
node's ``keypoints_3d`` must match the renderer's ground truth.  Malformed
messages must produce a warning naming the problem while the node keeps
working.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from _helpers import wait_for_log

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = '71'

import rclpy  # noqa: E402

from builtin_interfaces.msg import Time  # noqa: E402
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'src', 'sim_datagen'))

#: a render without occluders, blur, noise or lens distortion, board fully in view,
#: with the 25 mm squares of the class template
CLEAN = {'square_size': 0.025, 'hands': 0, 'bar': 0, 'n_distractors': 0, 'person': 0,
         'blur_sigma': 0.0, 'motion_blur': 0.0, 'noise_sigma': 0.0, 'distortion': 0,
         'jpeg_quality': 95, 'out_of_view': 0, 'shadow': 0, 'vignetting': 0.0,
         'board_width_frac': 0.5, 'tilt_x': 10.0, 'tilt_y': -15.0, 'roll': 8.0,
         'center_x': 0.0, 'center_y': 0.0}


def _rendered_pair():
    from sim_datagen.config import load_config
    from sim_datagen.generator import SampleGenerator
    cfg = load_config(os.path.join(ROOT, 'src', 'sim_datagen', 'config', 'checkerboard.yaml'))
    gen = SampleGenerator(cfg)
    try:
        return gen.generate(3, seed=7, overrides=CLEAN)
    finally:
        gen.world.close()


def _info(labels, view, stamp, frame):
    ci = labels['camera_info'][view]
    msg = CameraInfo()
    msg.header.stamp, msg.header.frame_id = stamp, frame
    msg.width, msg.height = int(ci['width']), int(ci['height'])
    msg.distortion_model = 'plumb_bob'
    msg.d = [float(v) for v in ci['D']] or [0.0] * 5
    msg.k = [float(v) for v in np.ravel(ci['K'])]
    msg.r = [float(v) for v in np.ravel(ci.get('R', np.eye(3)))]
    msg.p = [float(v) for v in np.ravel(ci['P'])]
    return msg


def _image(arr, stamp, frame, encoding='rgb8'):
    msg = Image()
    msg.header.stamp, msg.header.frame_id = stamp, frame
    msg.height, msg.width = arr.shape[:2]
    msg.encoding = encoding
    msg.step = arr.shape[1] * (arr.shape[2] if arr.ndim == 3 else 1)
    msg.data = arr.tobytes()
    return msg


@pytest.fixture(scope='module')
def harness(tmp_path_factory):
    from keypoint_perception.demo import node_command
    log_path = tmp_path_factory.mktemp('node') / 'node.log'
    log = open(log_path, 'w')
    proc = subprocess.Popen(
        node_command('stereo_keypoint_node') + [
            '--ros-args', '-p', 'reliable_qos:=true', '-p', 'input_rectified:=true'],
        stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node('node_test_harness')
    pubs = {t: node.create_publisher(Image if 'image' in t else CameraInfo, t, 10)
            for t in ('left/image_rect', 'left/camera_info', 'right/image_rect',
                      'right/camera_info')}
    got = {}

    def on(kind):
        def cb(msg):
            got[(kind, msg.header.stamp.sec)] = msg
        return cb

    node.create_subscription(Keypoints3D, 'keypoints_3d', on('3d'), 10)
    node.create_subscription(StereoKeypoints2D, 'keypoints_2d', on('2d'), 10)
    deadline = time.time() + 120
    while any(p.get_subscription_count() == 0 for p in pubs.values()) or \
            node.count_publishers('keypoints_3d') == 0:
        rclpy.spin_once(node, timeout_sec=0.1)
        assert proc.poll() is None, open(log_path).read()
        assert time.time() < deadline, 'node did not come up: ' + open(log_path).read()
    time.sleep(1.0)
    yield node, pubs, got, proc, log_path
    node.destroy_node()
    rclpy.shutdown()
    proc.terminate()
    proc.wait(10)
    log.close()


def _send(harness, sec, left, right, labels, left_enc='rgb8', break_info=None):
    node, pubs, got, _, _ = harness
    stamp = Time(sec=sec)
    linfo = _info(labels, 'left', stamp, 'left_optical')
    rinfo = _info(labels, 'right', stamp, 'right_optical')
    if break_info:
        break_info(linfo)
    pubs['left/image_rect'].publish(_image(left, stamp, 'left_optical', left_enc))
    pubs['left/camera_info'].publish(linfo)
    pubs['right/image_rect'].publish(_image(right, stamp, 'right_optical'))
    pubs['right/camera_info'].publish(rinfo)


def _wait(harness, key, timeout=30.0):
    node, _, got, _, _ = harness
    t0 = time.time()
    while key not in got and time.time() - t0 < timeout:
        rclpy.spin_once(node, timeout_sec=0.05)
    return got.get(key)


@pytest.fixture(scope='module')
def sample():
    return _rendered_pair()


def test_rendered_pair_gives_keypoints_3d_near_ground_truth(harness, sample):
    from keypoint_perception.training.metrics import symmetric_errors
    _send(harness, 1, sample['left'], sample['right'], sample['labels'])
    msg = _wait(harness, ('3d', 1))
    assert msg is not None, 'no keypoints_3d for the rendered pair'
    assert msg.header.frame_id == 'left_optical' and msg.header.stamp.sec == 1
    obj = msg.objects[0]
    assert obj.class_name == 'checkerboard'
    assert [k.valid for k in obj.keypoints] == [True] * 4
    xyz = np.array([[k.position.x, k.position.y, k.position.z] for k in obj.keypoints])
    gt = np.asarray(sample['labels']['keypoints_3d'])
    err = symmetric_errors(xyz, gt, [[2, 3, 0, 1]])
    # depth error of a stereo point: dZ = Z^2 / (f B) * d(disparity); allow the 3D
    # error of 3 px disparity error (the lite network's cells are 2.5 px here)
    P_r = np.asarray(sample['labels']['camera_info']['right']['P']).reshape(3, 4)
    f, baseline = P_r[0, 0], -P_r[0, 3] / P_r[0, 0]
    tol = gt[:, 2] ** 2 / (f * baseline) * 3.0
    assert np.all(err < tol), (err, tol)
    assert all(k.reprojection_error < 4.0 for k in obj.keypoints)
    assert obj.pose_valid and obj.pose_fit_rmse < 0.01
    msg2d = _wait(harness, ('2d', 1))
    assert msg2d.left.frame_id == 'left_optical' and msg2d.right.frame_id == 'right_optical'
    uv = np.array([[k.x, k.y] for k in msg2d.left.objects[0].keypoints])
    uv_gt = np.asarray(sample['labels']['keypoints_2d']['left'])
    # within one belief cell of the lite network (stride 4 at 256 px input width)
    cell_px = 4 * sample['left'].shape[1] / 256
    assert symmetric_errors(uv, uv_gt, [[2, 3, 0, 1]]).max() < cell_px


# increasing stamps (bad pair, then the next good one at sec + 1): the node never
# publishes a stamp older than one it already published
@pytest.mark.parametrize('sec, kind, expected', [
    (11, 'encoding', "'yuv999'"),
    (21, 'zero_k', 'left camera_info: K is all zeros'),
    (31, 'size', 'different sizes'),
])
def test_bad_messages_warn_and_node_survives(harness, sample, sec, kind, expected):
    node, pubs, got, proc, log_path = harness
    left, right, labels = sample['left'], sample['right'], sample['labels']
    if kind == 'encoding':
        _send(harness, sec, left, right, labels, left_enc='yuv999')
    elif kind == 'zero_k':
        def zero(info):
            info.k = [0.0] * 9
            info.p = [0.0] * 12
        _send(harness, sec, left, right, labels, break_info=zero)
    else:
        def shorter(info):
            info.height -= 2
        _send(harness, sec, np.ascontiguousarray(left[:-2]), right, labels,
              break_info=shorter)
    assert wait_for_log(log_path, expected), open(log_path).read()[-2000:]
    assert ('3d', sec) not in got
    assert proc.poll() is None, 'node died on a bad message'
    # and the next good pair is still processed
    _send(harness, sec + 1, left, right, labels)
    assert _wait(harness, ('3d', sec + 1)) is not None


def _set_string_parameter(harness, name, value):
    """Set a string parameter of the node through its set_parameters service."""
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    node = harness[0]
    client = node.create_client(SetParameters, '/stereo_keypoint_node/set_parameters')
    try:
        assert client.wait_for_service(timeout_sec=10.0)
        value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
        future = client.call_async(SetParameters.Request(
            parameters=[Parameter(name=name, value=value)]))
        rclpy.spin_until_future_complete(node, future, timeout_sec=10.0)
        return future.result().results[0]
    finally:
        node.destroy_client(client)


# stamps after those of the tests above: the node never publishes an older stamp
@pytest.mark.parametrize('name, bad, allowed, other, default, stamp', [
    ('roi_refinement', 'zoom', 'off, incomplete, always', 'off', 'always', 221),
    ('completion_search', 'both', 'views, stereo', 'views', 'stereo', 222)])
def test_choice_parameters_are_checked_and_applied(harness, sample, name, bad, allowed, other,
                                                   default, stamp):
    result = _set_string_parameter(harness, name, bad)
    assert not result.successful and allowed in result.reason and name in result.reason
    try:
        assert _set_string_parameter(harness, name, other).successful
        _send(harness, stamp, sample['left'], sample['right'], sample['labels'])
        msg = _wait(harness, ('3d', stamp))
        assert msg is not None and all(k.valid for k in msg.objects[0].keypoints)
    finally:
        assert _set_string_parameter(harness, name, default).successful


def test_camera_info_conversion_round_trip():
    """A camera model survives CameraInfo and back (one converter, both ways)."""
    from keypoint_perception.core.camera import CameraModel
    from keypoint_perception.nodes.conversions import camera_info_msg, camera_model
    K = np.array([[500.0, 0.0, 319.5], [0.0, 501.0, 239.5], [0.0, 0.0, 1.0]])
    P = np.hstack([K, [[-50.0], [0.0], [0.0]]])
    camera = CameraModel(width=640, height=480, K=K, D=[0.1, -0.2, 0.001, 0.002, 0.05],
                         distortion_model='plumb_bob', R=np.eye(3), P=P, frame_id='right_optical')
    msg = camera_info_msg(camera, Time(sec=4, nanosec=5))
    assert (msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec) == \
        ('right_optical', 4, 5)
    assert (msg.width, msg.height, msg.distortion_model) == (640, 480, 'plumb_bob')
    back = camera_model(msg)
    for name in ('K', 'D', 'R', 'P'):
        np.testing.assert_array_equal(getattr(back, name), getattr(camera, name))
    assert (back.width, back.height, back.frame_id) == (640, 480, 'right_optical')
    plain = CameraModel(width=64, height=48, K=K, D=[], distortion_model='', R=np.eye(3), P=P)
    msg = camera_info_msg(plain)
    assert msg.distortion_model == 'plumb_bob' and list(msg.d) == []
    assert not camera_model(msg).has_distortion
