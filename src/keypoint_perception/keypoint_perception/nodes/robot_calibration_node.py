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
"""Markerless camera-to-robot calibration node: robot keypoints + joint states -> TF.

Subscribed topics (relative, remappable):
  ``mode: stereo``, ``stereo_fit: reprojection`` (default): ``keypoints_2d``
  (keypoint_msgs/StereoKeypoints2D, both views), ``left/camera_info`` and
  ``right/camera_info`` (sensor_msgs/CameraInfo, the latest of each is used;
  sensor-data QoS); ``mode: stereo``, ``stereo_fit: rigid``: ``keypoints_3d``
  (keypoint_msgs/Keypoints3D); ``mode: mono``: ``keypoints_2d`` (its ``left``
  view) and ``camera_info``; always ``joint_states`` (sensor_msgs/JointState,
  the sample nearest to each keypoint stamp); ``robot_description``
  (std_msgs/String, reliable + transient local, as robot_state_publisher
  publishes it) unless the ``robot_description`` parameter holds the URDF.

Published:
  TF ``base_frame`` -> ``camera_frame``: the camera optical frame's pose in
  the robot's base frame, stamped with the keypoints' stamp, on
  ``/tf_static`` (latched: a static camera's calibration holds at any time;
  each new estimate replaces it) or, with ``static_tf`` false, on ``/tf``;
  ``camera_pose`` (geometry_msgs/PoseWithCovarianceStamped, the same pose in
  ``base_frame`` with its covariance: x, y, z in m, rotation about the fixed
  X, Y, Z axes in rad).

Each keypoint message gives one estimate of ``T_camera_base``
(:mod:`~keypoint_perception.core.robot_calibration`: two-view PnP, the rigid
fit of triangulated keypoints or PnP); the last
``window_size`` estimates of the static camera are combined
(:mod:`~keypoint_perception.core.multi_frame_calibration`) and published.

Parameters: :class:`~keypoint_perception.core.config.RobotCalibrationConfig`
(declared with descriptors; those not read-only can be changed while the
node runs, and each message is processed with one validated config).
"""

from collections import deque
import math
from typing import Dict, Optional

from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from keypoint_msgs.msg import Keypoints3D, StereoKeypoints2D
import numpy as np
from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from rclpy.qos import (DurabilityPolicy, qos_profile_sensor_data, QoSProfile,
                       ReliabilityPolicy)
from sensor_msgs.msg import CameraInfo, JointState
from std_msgs.msg import Header, String
from tf2_msgs.msg import TFMessage
import tf2_ros

from . import conversions
from .parameters import declare_table_parameters, validated_changes
from .runner import run_node
from .stereo_input import stamp_ns, WARN_PERIOD_S, WarningThrottle
from ..core.camera import CalibrationError
from ..core.config import RobotCalibrationConfig
from ..core.parameter_table import table_specs
from ..core.kinematics import keypoint_anchors, RobotKinematics
from ..core.multi_frame_calibration import combine_frames
from ..core.objects import load_object_class
from ..core.pose_covariance import inverse_pose_covariance, left_composed_pose_covariance
from ..core.robot_calibration import (fit_camera_to_base_mono, fit_camera_to_base_stereo,
                                      well_determined)
from ..core.two_view_calibration import fit_camera_to_base_stereo_views

#: Covariance published when none can be computed: 1e6 on the diagonal (unknown).
UNKNOWN_VARIANCE = 1e6
#: Seconds of joint states kept before the newest (beyond joint_state_tolerance): the
#: keypoints of an image arrive after its joint states by the detector's latency.
JOINT_STATE_HISTORY_S = 5.0
#: Latched QoS: the URDF as robot_state_publisher publishes it, and /tf_static.
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
#: Parameters whose change makes the estimates in the window stale.
ESTIMATE_PARAMETERS = ('instance_id', 'inlier_threshold_m', 'inlier_threshold_px',
                       'max_relative_std')


class RobotCalibrationNode(Node):
    """Estimate and publish the static camera's pose relative to the robot base."""

    def __init__(self, **kwargs):
        """Declare parameters, load the class, wire subscriptions and publishers.

        Raises:
            ValueError: a parameter value that is not allowed (one line
                naming it and the allowed values), or a class without link
                names.
        """
        super().__init__('robot_calibration_node', **kwargs)
        # one table (core.config.RobotCalibrationConfig); input_rectified's default follows
        # the mode, as the keypoints' source node reads rectified images in stereo only
        values = declare_table_parameters(self, RobotCalibrationConfig, ('mode',))
        values.update(declare_table_parameters(
            self, RobotCalibrationConfig,
            [name for name in table_specs(RobotCalibrationConfig) if name != 'mode'],
            defaults={'input_rectified': values['mode'] == 'stereo'}))
        self.config = cfg = RobotCalibrationConfig.from_mapping(values)
        self.object_class = load_object_class(cfg.object_class)
        self.anchors = keypoint_anchors(self.object_class, cfg.class_yaml or None)
        self.kinematics: Optional[RobotKinematics] = None
        self._parent_from_root: Dict[str, Optional[np.ndarray]] = {}  # per base_frame, URDF
        self.camera = None  # mono: the camera; stereo reprojection: the left camera
        self.right_camera = None
        self.joint_states = deque()  # (stamp ns, {joint: position}), oldest first
        self.window = deque()
        self._throttle = WarningThrottle(WARN_PERIOD_S)
        self.published = 0

        # /tf_static: a latched publisher of the one transform, so that each new estimate
        # replaces the last (as rclcpp's static broadcaster does; rclpy's versions differ)
        self.pub_tf_static = (self.create_publisher(TFMessage, '/tf_static', LATCHED_QOS)
                              if cfg.static_tf else None)
        self.tf_broadcaster = None if cfg.static_tf else tf2_ros.TransformBroadcaster(self)
        self.pub_pose = self.create_publisher(PoseWithCovarianceStamped, 'camera_pose', 10)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, 100)
        self.add_on_set_parameters_callback(self._on_parameters)
        description = cfg.robot_description
        if description:
            self._load_urdf(description)
        else:
            self.create_subscription(String, 'robot_description',
                                     lambda msg: self._load_urdf(msg.data), LATCHED_QOS)
        if cfg.mode == 'stereo' and cfg.stereo_fit == 'rigid':
            self.create_subscription(Keypoints3D, 'keypoints_3d', self._on_keypoints_3d, 10)
        elif cfg.mode == 'stereo':
            self.create_subscription(StereoKeypoints2D, 'keypoints_2d',
                                     self._on_stereo_keypoints_2d, 10)
            # sensor-data QoS matches best-effort and reliable camera drivers alike
            self.create_subscription(CameraInfo, 'left/camera_info',
                                     lambda msg: self._on_camera_info(msg, 'camera'),
                                     qos_profile_sensor_data)
            self.create_subscription(CameraInfo, 'right/camera_info',
                                     lambda msg: self._on_camera_info(msg, 'right_camera'),
                                     qos_profile_sensor_data)
        else:
            self.create_subscription(StereoKeypoints2D, 'keypoints_2d', self._on_keypoints_2d,
                                     10)
            self.create_subscription(CameraInfo, 'camera_info',
                                     lambda msg: self._on_camera_info(msg, 'camera'),
                                     qos_profile_sensor_data)
        fit = f' ({cfg.stereo_fit} fit)' if cfg.mode == 'stereo' else ''
        self.get_logger().info(
            f'{cfg.mode} calibration{fit} of the camera to {self.object_class.name} '
            f'({self.object_class.num_keypoints} keypoints); URDF from '
            f'{"the parameter" if description else self.resolve_topic_name("robot_description")}')

    def _on_parameters(self, params) -> SetParametersResult:
        """Validate the new config and swap it in whole, or refuse with a reason.

        Read-only parameters are refused by rclpy before this runs; each
        keypoint message reads ``self.config`` once.  A change of what the
        estimates depend on (:data:`ESTIMATE_PARAMETERS`) empties the window.
        """
        config, result = validated_changes(self.config, params)
        if config is not None:
            if any(getattr(config, name) != getattr(self.config, name)
                   for name in ESTIMATE_PARAMETERS):
                self.window.clear()  # estimates of another instance or other inliers
            self.config = config
        return result

    def _warn(self, kind: str, text: str):
        if self._throttle.ready(kind):
            self.get_logger().warning(text)

    # -- inputs -------------------------------------------------------------------------

    def _load_urdf(self, urdf: str):
        """Build the kinematics from URDF text (parameter or topic); warn if unusable."""
        try:
            kinematics = RobotKinematics(urdf)
            kinematics.required_joints([a.link for a in self.anchors])
        except (ValueError, FileNotFoundError) as e:
            self._warn('urdf', f'robot_description unusable for {self.object_class.name}: {e}')
            return
        self.kinematics = kinematics
        self._parent_from_root = {}
        self.window.clear()  # estimates of another robot model
        self.get_logger().info(f'URDF loaded: base link {kinematics.base_link}, '
                               f'{len(kinematics.joint_names)} joints')

    def _on_joint_state(self, msg: JointState):
        """Keep the joint states of the last seconds (by stamp, whatever their rate)."""
        if len(msg.name) != len(msg.position):
            self._warn('joint_state_size', f'joint state with {len(msg.name)} names and '
                       f'{len(msg.position)} positions ignored')
            return
        stamp = stamp_ns(msg.header.stamp)
        self.joint_states.append((stamp, dict(zip(msg.name, msg.position))))
        keep_ns = (self.config.joint_state_tolerance + JOINT_STATE_HISTORY_S) * 1e9
        while self.joint_states and self.joint_states[0][0] < stamp - keep_ns:
            self.joint_states.popleft()

    def _on_camera_info(self, msg: CameraInfo, attribute: str):
        """Keep the latest usable CameraInfo as ``self.<attribute>``; warn (throttled) if not."""
        try:
            setattr(self, attribute, conversions.camera_model(msg))
        except CalibrationError as e:
            self._warn(f'{attribute}_info', f'{attribute.replace("_", " ")} info unusable: {e}')

    def joints_at(self, stamp: int, tolerance_s: float) -> Dict[str, float]:
        """Return each joint's position from the joint state nearest to ``stamp`` (ns).

        Only samples within ``tolerance_s`` seconds count; several
        publishers (e.g. arm and gripper) are merged joint by joint.
        """
        tolerance = tolerance_s * 1e9
        best: Dict[str, tuple] = {}
        for sample_stamp, positions in self.joint_states:
            gap = abs(sample_stamp - stamp)
            if gap > tolerance:
                continue
            for name, value in positions.items():
                if name not in best or gap < best[name][0]:
                    best[name] = (gap, value)
        return {name: value for name, (_, value) in best.items()}

    # -- processing ---------------------------------------------------------------------

    def _on_keypoints_3d(self, msg: Keypoints3D):
        self._process(msg.header, [msg.objects], 'keypoints_3d')

    def _on_keypoints_2d(self, msg: StereoKeypoints2D):
        if self.camera is None:
            self._warn('no_camera_info', 'no camera_info received yet: keypoints_2d ignored')
            return
        self._process(msg.header, [msg.left.objects], 'keypoints_2d')

    def _on_stereo_keypoints_2d(self, msg: StereoKeypoints2D):
        if self.camera is None or self.right_camera is None:
            self._warn('no_camera_info', 'no left/camera_info or right/camera_info received '
                       'yet: keypoints_2d ignored')
            return
        self._process(msg.header, [msg.left.objects, msg.right.objects], 'keypoints_2d')

    def _process(self, header: Header, views, topic: str):
        """Estimate T_camera_base from one keypoint message, combine, publish.

        ``views``: the message's object lists, one per view (the keypoints
        of the views side by side: (J, 3), (J, 2) or (J, 4) for both views).
        """
        config = self.config  # one config for the whole message
        try:
            if self.kinematics is None:
                self._warn('no_urdf', f'no robot_description yet: {topic} ignored')
                return
            arrays = []
            for objects in views:
                obj = conversions.object_keypoints(objects, self.object_class,
                                                   config.instance_id)
                if obj is None:
                    self._warn('no_object', f'{topic} has no {self.object_class.name}')
                    return
                arrays.append(conversions.keypoint_array(obj, self.object_class))
            observed = np.hstack(arrays)
            joints = self.joints_at(stamp_ns(header.stamp), config.joint_state_tolerance)
            try:
                base = self.kinematics.keypoint_positions(joints, self.anchors)
            except ValueError as e:
                self._warn('joint_states', f'{topic} at {header.stamp.sec}.'
                           f'{header.stamp.nanosec:09d} s: {e} (within '
                           f'joint_state_tolerance)')
                return
            if config.mode == 'stereo' and config.stereo_fit == 'rigid':
                estimate = fit_camera_to_base_stereo(
                    observed, base, inlier_threshold_m=config.inlier_threshold_m,
                    max_relative_std=math.inf)
            elif config.mode == 'stereo':
                estimate = fit_camera_to_base_stereo_views(
                    observed[:, :2], observed[:, 2:], base, self.camera, self.right_camera,
                    rectified=config.input_rectified,
                    inlier_threshold_px=config.inlier_threshold_px,
                    max_relative_std=math.inf)
            else:
                estimate = fit_camera_to_base_mono(
                    observed, base, self.camera, rectified=config.input_rectified,
                    inlier_threshold_px=config.inlier_threshold_px,
                    max_relative_std=math.inf)
            if estimate is None:
                self._warn('no_estimate', f'{topic}: too few consistent keypoints '
                           f'({int(np.isfinite(observed).all(axis=1).sum())} valid)')
                return
            if well_determined(estimate, config.max_relative_std) is None:
                self._warn('uncertain', f'{topic}: estimate dropped, '
                           f'{estimate.describe_uncertainty()} '
                           f'(max_relative_std {config.max_relative_std:g})')
                return
            self.window.append((estimate, base, observed))
            while len(self.window) > config.window_size:
                self.window.popleft()
            if len(self.window) >= config.min_frames:
                self._publish(header, config)
        except Exception as e:  # noqa: B902 -- keep the node alive on any single message
            self._warn(f'processing_{type(e).__name__}',
                       f'{topic}: processing failed: {type(e).__name__}: {e}')

    def parent_from_root(self, base_frame: str) -> Optional[np.ndarray]:
        """Return ``T_parent_root`` (4, 4), metres, for a TF parent that is a URDF link.

        Computed once per URDF and frame name.  None when ``base_frame`` is
        no link of the URDF: it then names the root link's frame (e.g. with
        a TF prefix).

        Raises:
            ValueError: the link moves with a joint (not a base frame).
        """
        if base_frame not in self._parent_from_root:
            T_root_parent = self.kinematics.fixed_link_pose(base_frame)
            self._parent_from_root[base_frame] = (
                None if T_root_parent is None else np.linalg.inv(T_root_parent))
        return self._parent_from_root[base_frame]

    def _publish(self, header: Header, config: RobotCalibrationConfig):
        """Combine the window and publish TF and the pose with covariance."""
        base_frame = config.base_frame or self.kinematics.base_link
        camera_frame = config.camera_frame or header.frame_id
        if camera_frame == base_frame:
            self._warn('same_frame', f'the camera frame and the base frame are both '
                       f'{base_frame!r} (tf2 refuses a transform from a frame to itself): '
                       'set camera_frame or base_frame; nothing published')
            return
        try:
            T_parent_root = self.parent_from_root(base_frame)
        except ValueError as e:
            self._warn('base_frame', f'base_frame: {e}; nothing published')
            return
        estimates, bases, observations = zip(*self.window)
        combined = combine_frames(list(estimates), list(bases), list(observations),
                                  camera=self.camera,
                                  rectified=config.input_rectified,
                                  right_camera=self.right_camera)
        T_base_camera = np.linalg.inv(combined.T_camera_base)
        covariance = inverse_pose_covariance(combined.T_camera_base, combined.covariance)
        if T_parent_root is not None:  # the pose in a URDF link fixed to the root link
            T_base_camera = T_parent_root @ T_base_camera
            covariance = left_composed_pose_covariance(T_parent_root, covariance)
        if not np.all(np.isfinite(covariance)):
            covariance = np.eye(6) * UNKNOWN_VARIANCE
        pose = conversions.pose_msg(T_base_camera)
        out_header = Header(stamp=header.stamp, frame_id=base_frame)
        msg = PoseWithCovarianceStamped(header=out_header)
        msg.pose.pose = pose
        msg.pose.covariance = [float(x) for x in covariance.ravel()]
        self.pub_pose.publish(msg)
        transform = TransformStamped(header=out_header, child_frame_id=camera_frame)
        transform.transform.translation.x = pose.position.x
        transform.transform.translation.y = pose.position.y
        transform.transform.translation.z = pose.position.z
        transform.transform.rotation = pose.orientation
        if self.pub_tf_static is not None:
            self.pub_tf_static.publish(TFMessage(transforms=[transform]))
        else:
            self.tf_broadcaster.sendTransform(transform)
        self.published += 1
        if self.published == 1 or self.published % 100 == 0:
            std = 1000 * combined.translation_std_m
            self.get_logger().info(
                f'{base_frame} -> {camera_frame}: t = ({pose.position.x:.3f}, '
                f'{pose.position.y:.3f}, {pose.position.z:.3f}) m from '
                f'{int(combined.frames_used.sum())}/{len(self.window)} frames, per-frame std '
                f'({", ".join("n/a" if math.isnan(s) else f"{s:.1f}" for s in std)}) mm')


def main(args=None):
    """Run the node until shutdown (see :func:`~.runner.run_node`)."""
    return run_node(RobotCalibrationNode, args, 'robot_calibration_node')


if __name__ == '__main__':
    main()
