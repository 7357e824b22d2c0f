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
"""The tables of the nodes' parameters (no ROS).

:class:`PipelineConfig` is a frozen dataclass whose fields are the parameters
of ``stereo_keypoint_node`` (the node declares its ROS parameters from it;
``mono_keypoint_node`` declares a subset), and of the core pipeline;
:class:`RobotCalibrationConfig` is the same for ``robot_calibration_node``.
Each field carries its default, type, range or choices, whether it needs a
restart (read-only ROS parameter), whether the launch file exposes it, and its
description (:class:`ParameterSpec`, :func:`parameter_specs`).
``config/stereo_keypoints.yaml``, the launch arguments and ``docs/nodes.md``
are checked against or generated from this table.

ROS reads parameter values given on the command line (``-p name:=value``), in
YAML files and through launch substitutions as YAML: ``off``, ``on``, ``yes``,
``no`` become booleans and ``1`` an integer. Every documented value must
survive that, so :meth:`PipelineConfig.validated` converts what YAML makes of
them: integers to floats for ``double`` parameters, the boolean ``false`` to
``'off'`` for ``roi_refinement``, integers to strings for ``instance_id``.
"""

from dataclasses import dataclass
from typing import Tuple

# _param: the tables below keep their short field declarations
from .parameter_table import param_field as _param
from .parameter_table import ParameterSpec, ParameterTable, table_specs

#: Test-time augmentations of the detector: none, or the mean of the image's
#: belief maps and its 180 degree rotation's or mirror image's (:mod:`.heatmaps`);
#: ``auto`` takes the one the checkpoint was validated with.
TEST_TIME_AUGMENTATIONS = ('none', 'rot180', 'hflip')

#: Where the network runs (:func:`~.backends.choose_backend`): ``auto`` is ONNX Runtime
#: for an ONNX file and on the CPU when onnxruntime is installed, PyTorch otherwise.
INFERENCE_BACKENDS = ('auto', 'torch', 'onnxruntime')

#: When the pipeline takes a second, zoomed look at the object: never, when the first
#: look left keypoints out of 3D, or on every pair where the object was found.
ROI_REFINEMENTS = ('off', 'incomplete', 'always')

#: How template completion looks for a missing keypoint near the fitted
#: template's prediction: each view's own belief peak
#: (:func:`~.completion.complete_from_template`), or the 3D point both views'
#: beliefs agree on most (:func:`~.completion.stereo_belief_search`).
COMPLETION_SEARCHES = ('views', 'stereo')

#: Default completion search, chosen on held-out synthetic pairs
#: (docs/benchmarks.md, "Template completion searches in 3D").
DEFAULT_COMPLETION_SEARCH = 'stereo'

#: Default window side over the keypoints' extent of the second look, chosen
#: on held-out synthetic pairs (docs/benchmarks.md, "Second, zoomed look").
DEFAULT_ROI_SCALE = 1.75

#: Groups of parameters, in documentation order.
GROUPS = ('model', 'input', 'detection', 'triangulation', 'template', 'roi', 'output')


@dataclass(frozen=True)
class PipelineConfig(ParameterTable):
    """Every parameter of the stereo keypoint node and its pipeline, validated.

    The single source of each parameter's default, type, range or choices
    and description (field metadata, see :func:`parameter_specs`).  The
    defaults are the node's.  ``model``, ``device``, ``backend``,
    ``num_threads``, ``test_time_augmentation`` and the ``input`` group (but
    ``input_rectified``) need a restart (read-only ROS parameters); the others
    can be changed at run time.
    Construction validates and converts every field (see
    :meth:`ParameterSpec.convert`), so an instance always holds allowed
    values.  Units: pixels are original-image pixels, belief cells are cells
    of the network's output maps, metres in the left camera's optical frame.

    Raises:
        ValueError: on construction with a value that is not allowed.
    """

    # -- model (restart needed) ------------------------------------------------
    model: str = _param(
        'checkerboard_lite', 'Shipped model name (keypoint_perception/models/<name>.pt or '
        '.onnx), checkpoint path, or ONNX file written by keypoints-export.', 'model',
        read_only=True, launch=True)
    device: str = _param('cpu', 'Torch device, e.g. "cpu" or "cuda:0".', 'model',
                         read_only=True, launch=True)
    backend: str = _param(
        'auto', 'Inference backend: "torch" (PyTorch, CPU or CUDA); "onnxruntime" (ONNX '
        'Runtime: the CPU, or on cuda the TensorRT (fp16) and CUDA execution providers where '
        'installed; a checkpoint is exported to ONNX on first use); "auto" = onnxruntime for an '
        '.onnx model and on the CPU when onnxruntime is installed, torch otherwise.', 'model',
        choices=INFERENCE_BACKENDS, read_only=True, launch=True)
    num_threads: int = _param(
        0, 'Intra-op threads of the backend; 0 = the thread policy: onnxruntime every '
        'available core with threads that do not spin (they leave the cores to the node\'s '
        'post-processing and to other processes while they wait), torch its own default (one '
        'per physical core).', 'model', low=0, high=256, read_only=True)
    test_time_augmentation: str = _param(
        'auto', 'Test-time augmentation: "none"; "rot180" (mean of the belief maps of each '
        'image and of its 180 degree rotation: steadier peaks, twice the network time); '
        '"hflip" (the same with the mirror image, for classes whose YAML gives a "mirror" '
        'permutation: the robots); "auto" = what the checkpoint was validated with.', 'model',
        choices=('auto',) + TEST_TIME_AUGMENTATIONS, read_only=True, launch=True)
    # -- input (restart needed) ------------------------------------------------
    approximate_sync: bool = _param(
        False, 'Pair left/right with ApproximateTimeSynchronizer (unsynchronized cameras) '
        'instead of exact stamps.', 'input', read_only=True, launch=True)
    sync_slop: float = _param(0.01, 'Max stamp difference (s) for approximate sync (pairs '
                              'form only below it: 0 would never pair).', 'input',
                              low=0.0001, high=1.0, read_only=True, launch=True)
    queue_size: int = _param(5, 'Synchronizer queue size and subscription depth (keep last) '
                             'per input.', 'input', low=1, high=100, read_only=True)
    reliable_qos: bool = _param(
        False, 'Subscribe reliably instead of best effort (the sensor-data profile), and '
        'wait for each pair\'s network pass instead of replacing a waiting pair with a '
        'newer one: no pair is lost in transport or while the node keeps up, at the price '
        'of lag when it is slower; each input then still keeps only its newest queue_size '
        'messages, so a node that stays slower than the cameras loses pairs either way. '
        'Reliable subscriptions match reliable publishers only.', 'input', read_only=True)
    input_rectified: bool = _param(
        True, 'Images are rectified (image_rect): pixels are used with P directly. Set false '
        'for raw images: keypoints are then undistorted and rectified with K, D, R, P before '
        'triangulation.', 'input', launch=True)
    # -- detection -------------------------------------------------------------
    peak_threshold: float = _param(0.1, 'Minimum belief of a 2D detection.', 'detection',
                                   low=0.0, high=1.0)
    min_confidence: float = _param(
        0.3, 'Keypoints with a lower belief peak (either view) are not triangulated.',
        'detection', low=0.0, high=1.0)
    # -- triangulation ---------------------------------------------------------
    max_reprojection_error: float = _param(
        4.0, 'Reject 3D points whose RMS reprojection error (pixels) exceeds this.',
        'triangulation', low=0.0, high=1000.0)
    min_depth: float = _param(0.05, 'Reject 3D points closer than this (m) to either camera.',
                              'triangulation', low=0.0, high=100.0)
    refine_triangulation: bool = _param(
        True, 'Levenberg-Marquardt refinement of the DLT points (reprojection error in both '
        'views).', 'triangulation')
    # -- template --------------------------------------------------------------
    template_check: bool = _param(
        True, 'Choose among several belief peaks per keypoint those that agree across views '
        '(epipolar) and with the class template\'s shape.', 'template')
    template_completion: bool = _param(
        True, 'When at least 3 keypoints are triangulated, look for the missing ones where '
        'the fitted template predicts them (weaker belief accepted).', 'template')
    completion_min_belief: float = _param(
        0.05, 'Lowest belief (both views) of a keypoint found by template completion.',
        'template', low=0.0, high=1.0)
    completion_radius: float = _param(
        20.0, 'Search radius (pixels) around the predicted position for template completion.',
        'template', low=1.0, high=1000.0)
    completion_search: str = _param(
        DEFAULT_COMPLETION_SEARCH, 'How template completion looks near the prediction: '
        '"stereo" (the 3D point whose projections have the highest product of the two views\' '
        'beliefs: epipolar-consistent by construction) or "views" (each view\'s own belief '
        'peak; their stereo match must then pass max_reprojection_error).', 'template',
        choices=COMPLETION_SEARCHES)
    localization_sigma: float = _param(
        0.0, 'Standard deviation of a keypoint\'s image position (belief cells, per view). '
        'When > 0, the template shape checks allow for the triangulation noise this causes at '
        'the keypoints\' depth (far objects, short baselines); 0 keeps the fixed relative '
        'tolerance.', 'template', low=0.0, high=5.0)
    fit_pose: bool = _param(True, 'Fit the class template (Umeyama) for the object pose and TF.',
                            'template')
    # -- second look -----------------------------------------------------------
    roi_refinement: str = _param(
        'always', 'Second, zoomed look at the object: the network runs again on a window '
        'around it in each view (from the first look\'s keypoints), so that a small or far '
        'object is seen at a higher resolution. "off" (YAML\'s false is read as "off"); '
        '"incomplete" (only when the first look left keypoints out of 3D); "always". Skipped '
        'when the object already fills most of the image; costs a second network pass when '
        'taken.', 'roi', choices=ROI_REFINEMENTS, launch=True, aliases={False: 'off'})
    roi_scale: float = _param(
        DEFAULT_ROI_SCALE, 'Side of the second look\'s window over the extent of the object\'s '
        'keypoints (> 1 keeps context around them).', 'roi', low=1.2, high=10.0)
    roi_augmentation: bool = _param(
        True, 'Apply the model\'s test-time augmentation in the second look too; false '
        'halves its network time, which keeps the p95 latency within 1.5x the mean on two '
        'cores, but makes its keypoints 14% less precise (docs/benchmarks.md).', 'roi')
    # -- output ----------------------------------------------------------------
    publish_tf: bool = _param(True, 'Broadcast keypoint and object frames on /tf.', 'output')
    tf_prefix: str = _param('', 'Child frame prefix; empty = "<class>_<instance_id>".',
                            'output', frame_name=True)
    instance_id: str = _param('0', 'Instance id reported for the detected object (part of '
                              'its TF frame names when tf_prefix is empty).', 'output',
                              numbers_as_text=True, frame_name=True)
    marker_scale: float = _param(0.01, 'Sphere diameter of keypoint markers (m).', 'output',
                                 low=0.0001, high=10.0)
    marker_lifetime: float = _param(0.5, 'Marker lifetime (s); 0 = forever.', 'output',
                                    low=0.0, high=3600.0)
    debug_heatmaps: bool = _param(True, 'Overlay belief maps on debug/image.', 'output')


def parameter_specs() -> Tuple[ParameterSpec, ...]:
    """Every parameter of :class:`PipelineConfig`, in declaration order."""
    return tuple(table_specs(PipelineConfig).values())


def parameter_spec(name: str) -> ParameterSpec:
    """Return the :class:`ParameterSpec` of one parameter of :class:`PipelineConfig`.

    Raises:
        KeyError: unknown name.
    """
    return table_specs(PipelineConfig)[name]


def launch_parameters() -> Tuple[ParameterSpec, ...]:
    """Return the parameters ``stereo_keypoints.launch.py`` exposes as launch arguments.

    Each :class:`ParameterSpec` gives the argument's name, ROS type
    (``ros_type``: the ``value_type`` for ``launch_ros``' ``ParameterValue``,
    as ``python_type``), default and description.
    """
    return tuple(spec for spec in parameter_specs() if spec.launch)


#: Modes of the robot calibration node: the keypoints' source.
CALIBRATION_MODES = ('stereo', 'mono')
#: Stereo fits of the robot calibration node.
STEREO_FITS = ('reprojection', 'rigid')


@dataclass(frozen=True)
class RobotCalibrationConfig(ParameterTable):
    """Every parameter of ``robot_calibration_node``, validated.

    ``input_rectified``'s table default (true) is the stereo one; the node
    declares it with false in ``mono`` mode, where keypoints come from raw
    images.  Units: metres in the camera's optical frame, pixels of the
    keypoints' images, seconds.

    Raises:
        ValueError: on construction with a value that is not allowed, or
            ``min_frames`` above ``window_size`` (the node would never
            publish).
    """

    # -- input (restart needed) ------------------------------------------------
    mode: str = _param(
        'stereo', 'Keypoints from the stereo node (keypoints_2d of both views, or '
        'keypoints_3d with stereo_fit rigid) or one camera (keypoints_2d + camera_info).',
        'input', choices=CALIBRATION_MODES, read_only=True)
    stereo_fit: str = _param(
        'reprojection', 'Stereo: "reprojection" = the pose that minimizes the reprojection '
        'error of both views\' keypoints (keypoints_2d, left/camera_info, right/camera_info; '
        'far more accurate than the rigid fit when the robot is metres away, where stereo '
        'depth is the weak coordinate); "rigid" = Umeyama + RANSAC on keypoints_3d.',
        'input', choices=STEREO_FITS, read_only=True)
    object_class: str = _param(
        'panda', 'Robot object class whose keypoints are used (its YAML names each '
        'keypoint\'s URDF link).', 'input', read_only=True)
    class_yaml: str = _param(
        '', 'Class YAML with the keypoints\' links; empty = the shipped one.', 'input',
        read_only=True)
    robot_description: str = _param(
        '', 'The URDF (XML text, as robot_state_publisher takes it); empty = subscribe to '
        'the robot_description topic.', 'input', read_only=True)
    input_rectified: bool = _param(
        True, 'Mono and stereo reprojection fit: the 2D keypoints are pixels of the rectified '
        'image(s) (P) instead of the raw one(s) (K, D). Default: true in stereo (the stereo '
        'keypoint node reads image_rect by default), false in mono (image_raw).', 'input',
        read_only=True)
    # -- input ------------------------------------------------------------------
    instance_id: str = _param(
        '', 'Use only this instance of the class; empty = the first one. A change empties '
        'the window of estimates.', 'input', numbers_as_text=True)
    joint_state_tolerance: float = _param(
        0.05, 'Largest stamp difference (s) between keypoints and the joint state used.',
        'input', low=0.0, high=10.0)
    # -- fit --------------------------------------------------------------------
    inlier_threshold_m: float = _param(
        0.02, 'Stereo rigid fit: largest 3D distance (m) of an inlier keypoint. A change '
        'empties the window of estimates.', 'fit', low=0.0001, high=1.0)
    inlier_threshold_px: float = _param(
        8.0, 'Mono and stereo reprojection fit: largest reprojection error (px) of an inlier '
        'keypoint. A change empties the window of estimates.', 'fit', low=0.1, high=1000.0)
    max_relative_std: float = _param(
        0.25, 'Largest 1-sigma translation uncertainty of one frame\'s estimate (from its '
        'covariance), as a fraction of the robot base\'s distance; less certain frames '
        'are dropped (fits on a few nearly collinear keypoints can land metres away). A '
        'change empties the window of estimates.', 'fit', low=0.001, high=1000.0)
    window_size: int = _param(
        30, 'Estimates (frames) combined; the camera must not move in them.', 'fit',
        low=1, high=10000)
    min_frames: int = _param(
        1, 'Estimates needed before the first publication (at most window_size).', 'fit',
        low=1, high=10000)
    # -- output -----------------------------------------------------------------
    static_tf: bool = _param(
        True, 'Publish the transform on /tf_static (latched: valid at any time, as a static '
        'camera\'s calibration is; each new estimate replaces it); false = on /tf, stamped '
        'with the keypoints (TF lookups then need recent keypoints).', 'output',
        read_only=True)
    base_frame: str = _param(
        '', 'Parent TF frame. Empty = the URDF\'s root link; a URDF link fixed to the root '
        '(e.g. world) = the pose in that link; another name = the root link\'s frame under '
        'that name (e.g. with a TF prefix).', 'output', frame_name=True)
    camera_frame: str = _param(
        '', 'Child TF frame; empty = the keypoints\' header.frame_id (the camera optical '
        'frame). Set another name if that frame already has a parent.', 'output',
        frame_name=True)

    def __post_init__(self):
        """Validate every field, then ``min_frames <= window_size`` and two distinct frames."""
        super().__post_init__()
        if self.min_frames > self.window_size:
            raise ValueError(f'parameter min_frames is {self.min_frames}; must be at most '
                             f'window_size ({self.window_size}), or nothing is ever published')
        if self.camera_frame and self.camera_frame == self.base_frame:
            raise ValueError(f'parameters base_frame and camera_frame are both '
                             f'{self.camera_frame!r}: tf2 refuses a transform from a frame '
                             'to itself')
