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
"""Camera models of ROS ``sensor_msgs/CameraInfo`` and projection with P matrices.

No ROS import: camera models are built from anything shaped like
``sensor_msgs/CameraInfo`` (duck typing) or from ROS camera_info YAML files.

Frames and conventions (REP 103/105, ROS ``sensor_msgs/CameraInfo``):

* *Optical frame* of a camera: +x right, +y down, +z forward, metres; the
  ``header.frame_id`` of its CameraInfo.
* *Rectified frame* of a camera: its optical frame rotated by the
  rectification matrix ``R``: ``X_rect = R @ X_optical``.  For a stereo pair
  the two rectified frames are parallel; ``P_left`` and ``P_right`` both
  project points given in the LEFT rectified frame.
* *Raw pixels*: pixels of the image as captured (distorted, ``image_raw``),
  described by ``K`` and ``D``.  *Rectified pixels*: pixels of the rectified
  image (``image_rect``), described by ``P``.  Pixel (0, 0) is the centre of
  the top-left pixel (OpenCV convention).
* The right camera's ``P[0, 3] = -fx' * B`` (``P[1, 3] = -fy' * B`` for a
  vertical rig), B the baseline in metres.

Lens distortion and rectification of pixels live in :mod:`.distortion`.
All arrays are float64 numpy arrays; N is a number of points.  Missing 2D
keypoints are NaN rows and propagate as NaN / invalid.
"""

from dataclasses import dataclass
import math

import numpy as np
import yaml

from .arrays import as_points

#: Distortion models of ``sensor_msgs/distortion_models.hpp`` and the number of
#: coefficients in ``D`` each requires ('' = no distortion), the first the
#: standard's.  An empty ``D`` is accepted for every model and means "no
#: distortion".  ``rational_polynomial`` also takes OpenCV's 12 and 14 (thin
#: prism and tilt terms after the 8), as depthai-ros (OAK) cameras send them;
#: every use of D goes through OpenCV, which reads all three.
DISTORTION_LENGTHS = {
    'plumb_bob': (5,),
    'rational_polynomial': (8, 12, 14),
    'equidistant': (4,),
    '': (),
}


class CalibrationError(ValueError):
    """Camera calibration that cannot be used (missing, malformed or non-finite)."""


def _as_matrix(name, values, shape):
    """Return ``values`` as a finite float64 array of ``shape`` or raise CalibrationError."""
    try:
        arr = np.array(values, dtype=np.float64)  # a copy: the model is immutable
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f'{name} is not numeric: {exc}') from None
    if arr.size != int(np.prod(shape)):
        raise CalibrationError(
            f'{name} must have {int(np.prod(shape))} values, got {arr.size}')
    arr = arr.reshape(shape)
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f'{name} contains non-finite values (NaN or inf)')
    return arr


@dataclass(frozen=True, eq=False)
class CameraModel:
    """Pinhole camera with lens distortion and stereo rectification (ROS CameraInfo).

    Attributes:
        width: image width in pixels (the size the calibration refers to).
        height: image height in pixels.
        K: (3, 3) intrinsic matrix of the raw (distorted) image, pixels.
        D: (n,) distortion coefficients; n = 5 (plumb_bob: k1 k2 p1 p2 k3),
            8 (rational_polynomial: k1 k2 p1 p2 k3 k4 k5 k6), 4 (equidistant:
            k1 k2 k3 k4), or 0 (no distortion).
        distortion_model: 'plumb_bob', 'rational_polynomial', 'equidistant'
            or '' (no distortion).
        R: (3, 3) rectification rotation, optical frame -> rectified frame.
        P: (3, 4) projection matrix of the rectified image, from the (left)
            rectified frame in metres to rectified pixels.
        frame_id: the camera's optical frame (CameraInfo ``header.frame_id``).

    Raises:
        CalibrationError: from the constructor on wrong shapes or lengths,
            non-finite values, all-zero K or P, non-positive focal lengths or
            image size, an unknown distortion model, or an R that is not a
            rotation.
    """

    width: int
    height: int
    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    R: np.ndarray
    P: np.ndarray
    frame_id: str = ''

    def __post_init__(self):
        """Convert to float64 arrays and validate (see the class docstring)."""
        model = str(self.distortion_model or '')
        if model not in DISTORTION_LENGTHS:
            raise CalibrationError(
                f'unsupported distortion model {model!r}; expected one of '
                f'{sorted(m for m in DISTORTION_LENGTHS if m)} or empty')
        K = _as_matrix('K', self.K, (3, 3))
        P = _as_matrix('P', self.P, (3, 4))
        R = _as_matrix('R', self.R, (3, 3))
        try:
            D = np.array(self.D, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise CalibrationError(f'D is not numeric: {exc}') from None
        if not np.all(np.isfinite(D)):
            raise CalibrationError('D contains non-finite values (NaN or inf)')
        if D.size and model == '' and np.any(D != 0):
            raise CalibrationError('distortion model is empty but D is not all zeros')
        if D.size and model and D.size not in DISTORTION_LENGTHS[model]:
            raise CalibrationError(
                f'distortion model {model!r} needs '
                f'{" or ".join(map(str, DISTORTION_LENGTHS[model]))} coefficients in D, got '
                f'{D.size}')
        if not np.any(K):
            raise CalibrationError('K is all zeros: the camera is not calibrated')
        if not np.any(P):
            raise CalibrationError('P is all zeros: the camera is not calibrated')
        if not (K[0, 0] > 0 and K[1, 1] > 0 and K[2, 2] != 0):
            raise CalibrationError(f'K has non-positive focal lengths or K[2,2] = 0: {K.tolist()}')
        if not (P[0, 0] > 0 and P[1, 1] > 0 and P[2, 2] != 0):
            raise CalibrationError(f'P has non-positive focal lengths or P[2,2] = 0: {P.tolist()}')
        if not np.any(R):
            R = np.eye(3)  # many monocular drivers leave R zero: means "no rectification"
        if (not np.allclose(R @ R.T, np.eye(3), atol=1e-4)) or np.linalg.det(R) <= 0:
            raise CalibrationError(f'R is not a rotation matrix: {R.tolist()}')
        try:
            width, height = int(self.width), int(self.height)
        except (TypeError, ValueError):
            raise CalibrationError('width and height must be integers') from None
        if width <= 0 or height <= 0:
            raise CalibrationError(f'image size must be positive, got {width}x{height}')
        for name, value in (('width', width), ('height', height), ('K', K), ('D', D),
                            ('distortion_model', model), ('R', R), ('P', P),
                            ('frame_id', str(self.frame_id or ''))):
            object.__setattr__(self, name, value)
        for arr in (K, D, R, P):
            arr.setflags(write=False)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_camera_info(cls, msg) -> 'CameraModel':
        """Build from a ``sensor_msgs/msg/CameraInfo`` or any object with its fields.

        Reads ``width``, ``height``, ``distortion_model``, ``d``, ``k``, ``r``,
        ``p`` and ``header.frame_id`` (ROS 1 upper-case ``D/K/R/P`` are also
        accepted).  ``binning_x/binning_y`` > 1 are applied with
        :meth:`scaled`; a region of interest smaller than the image is
        rejected.  An all-zero ``r`` is taken as identity.

        Raises:
            CalibrationError: on missing fields, zero K or P (uncalibrated
                camera), wrong lengths (k: 9, r: 9, p: 12, d: see
                ``DISTORTION_LENGTHS``), non-finite values, or an ROI.
        """
        def field(name):
            for attr in (name, name.upper()):
                if hasattr(msg, attr):
                    return getattr(msg, attr)
            raise CalibrationError(f'CameraInfo has no field {name!r}')

        header = getattr(msg, 'header', None)
        cam = cls(width=field('width'), height=field('height'), K=field('k'), D=field('d'),
                  distortion_model=field('distortion_model'), R=field('r'), P=field('p'),
                  frame_id=getattr(header, 'frame_id', '') if header is not None else '')
        roi = getattr(msg, 'roi', None)
        if roi is not None:
            rw, rh = int(getattr(roi, 'width', 0)), int(getattr(roi, 'height', 0))
            ox, oy = int(getattr(roi, 'x_offset', 0)), int(getattr(roi, 'y_offset', 0))
            full = (rw, rh) in ((0, 0), (cam.width, cam.height)) and ox == 0 and oy == 0
            if not full:
                raise CalibrationError(
                    f'CameraInfo region of interest {rw}x{rh}+{ox}+{oy} is not supported')
        bx = int(getattr(msg, 'binning_x', 0) or 1)
        by = int(getattr(msg, 'binning_y', 0) or 1)
        if bx > 1 or by > 1:
            cam = cam.scaled(1.0 / bx, 1.0 / by)
        return cam

    @classmethod
    def from_camera_info_dict(cls, data: dict, frame_id: str = '') -> 'CameraModel':
        """Build from a parsed ROS camera_info YAML mapping (camera_calibration_parsers).

        Keys: ``image_width``, ``image_height``, ``camera_matrix``,
        ``distortion_model`` (default 'plumb_bob'), ``distortion_coefficients``,
        ``rectification_matrix`` (default identity), ``projection_matrix``;
        matrices are ``{rows, cols, data}``.

        Raises:
            CalibrationError: on missing keys, rows * cols != len(data), or
                any constructor check.
        """
        if not isinstance(data, dict):
            raise CalibrationError('camera_info YAML must be a mapping')

        def block(key, required=True):
            if key not in data:
                if required:
                    raise CalibrationError(f'camera_info YAML has no {key!r}')
                return None
            b = data[key]
            try:
                rows, cols, values = int(b['rows']), int(b['cols']), list(b['data'])
            except (KeyError, TypeError, ValueError):
                raise CalibrationError(f'{key!r} must be a mapping with rows, cols, data') \
                    from None
            if rows * cols != len(values):
                raise CalibrationError(
                    f'{key!r}: rows * cols = {rows * cols} but data has {len(values)} values')
            return values

        for key in ('image_width', 'image_height'):
            if key not in data:
                raise CalibrationError(f'camera_info YAML has no {key!r}')
        R = block('rectification_matrix', required=False)
        return cls(width=data['image_width'], height=data['image_height'],
                   K=block('camera_matrix'), D=block('distortion_coefficients'),
                   distortion_model=data.get('distortion_model', 'plumb_bob'),
                   R=np.eye(3) if R is None else R, P=block('projection_matrix'),
                   frame_id=frame_id)

    @classmethod
    def from_yaml(cls, path: str, frame_id: str = '') -> 'CameraModel':
        """Load a ROS camera_info YAML file (see :meth:`from_camera_info_dict`).

        Raises:
            OSError: if the file cannot be read.
            CalibrationError: on malformed content.
        """
        with open(path, 'r', encoding='utf-8') as f:
            try:
                data = yaml.safe_load(f)
            except yaml.YAMLError as exc:
                raise CalibrationError(f'{path}: invalid YAML: {exc}') from None
        try:
            return cls.from_camera_info_dict(data, frame_id=frame_id)
        except CalibrationError as exc:
            raise CalibrationError(f'{path}: {exc}') from None

    def to_camera_info_dict(self) -> dict:
        """Return the ``sensor_msgs/CameraInfo`` fields as plain Python values.

        Keys: ``width``, ``height``, ``distortion_model``, ``d`` (list),
        ``k`` (9), ``r`` (9), ``p`` (12), ``frame_id``; ready to assign to a
        message (``msg.k = d['k']`` ...).
        """
        return {'width': self.width, 'height': self.height,
                'distortion_model': self.distortion_model,
                'd': [float(x) for x in self.D], 'k': [float(x) for x in self.K.ravel()],
                'r': [float(x) for x in self.R.ravel()],
                'p': [float(x) for x in self.P.ravel()], 'frame_id': self.frame_id}

    def to_yaml_dict(self, camera_name: str = 'camera') -> dict:
        """Return the ROS camera_info YAML mapping (inverse of :meth:`from_camera_info_dict`)."""
        def block(m):
            m = np.atleast_2d(m)
            return {'rows': int(m.shape[0]), 'cols': int(m.shape[1]),
                    'data': [float(x) for x in m.ravel()]}

        return {'image_width': self.width, 'image_height': self.height,
                'camera_name': camera_name, 'camera_matrix': block(self.K),
                'distortion_model': self.distortion_model or 'plumb_bob',
                'distortion_coefficients': block(self.D.reshape(1, -1)),
                'rectification_matrix': block(self.R), 'projection_matrix': block(self.P)}

    # ---------------------------------------------------------------- properties
    @property
    def has_distortion(self) -> bool:
        """Return whether any distortion coefficient is non-zero."""
        return bool(np.any(self.D != 0))

    @property
    def is_rectified(self) -> bool:
        """Return whether D is all zero (or empty) and R is the identity."""
        return (not self.has_distortion) and bool(np.allclose(self.R, np.eye(3), atol=1e-12))

    def scaled(self, sx: float, sy: float) -> 'CameraModel':
        """Return the model of the image resized by ``sx`` (x) and ``sy`` (y).

        Uses the pixel-centre convention of ``cv2.resize``: a pixel coordinate
        u maps to ``sx * (u + 0.5) - 0.5`` (same for v with sy).  K and P rows
        are transformed accordingly (including ``P[0, 3] = -fx' * B``); D and
        R are unchanged; width/height become ``round(width * sx)`` etc.

        Raises:
            ValueError: if sx or sy is not a positive finite number.
        """
        sx, sy = float(sx), float(sy)
        if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
            raise ValueError(f'scale factors must be positive and finite, got {sx}, {sy}')
        A = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        return CameraModel(width=max(1, int(round(self.width * sx))),
                           height=max(1, int(round(self.height * sy))),
                           K=A @ self.K, D=self.D.copy(), distortion_model=self.distortion_model,
                           R=self.R.copy(), P=A @ self.P, frame_id=self.frame_id)


def camera_center(P: np.ndarray) -> np.ndarray:
    """Return the (3,) centre C of a finite projective camera P (3, 4): P @ [C; 1] = 0.

    C = -M^-1 p4 with P = [M | p4] (Hartley & Zisserman, 2nd ed., 6.2.2), in
    the frame P projects from (metres).

    Raises:
        ValueError: if P is not (3, 4) or M is singular.
    """
    P = np.asarray(P, dtype=np.float64)
    if P.shape != (3, 4):
        raise ValueError(f'P must be (3, 4), got {P.shape}')
    try:
        return -np.linalg.solve(P[:, :3], P[:, 3])
    except np.linalg.LinAlgError:
        raise ValueError('P[:, :3] is singular: not a finite camera') from None


def project(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Project points X (N, 3) with P (3, 4); return (N, 2) pixels (NaN/inf where w = 0)."""
    X = as_points('X', X, 3)
    h = X @ np.asarray(P, dtype=np.float64)[:, :3].T + np.asarray(P, dtype=np.float64)[:, 3]
    with np.errstate(divide='ignore', invalid='ignore'):
        return h[:, :2] / h[:, 2:3]


def point_depth(P: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Return the (N,) depth of points X (N, 3) in front of camera P (3, 4), metres.

    depth = sign(det M) * w / ||m3|| with w = P[2] @ [X; 1] and M = P[:, :3]
    (Hartley & Zisserman, 2nd ed., 6.2.3); negative behind the camera.
    """
    P = np.asarray(P, dtype=np.float64)
    X = as_points('X', X, 3)
    M = P[:, :3]
    w = X @ P[2, :3] + P[2, 3]
    return np.sign(np.linalg.det(M)) * w / np.linalg.norm(M[2])


def reprojection_error(P: np.ndarray, X: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Return the (N,) Euclidean distance in pixels between project(P, X) and uv (N, 2).

    P (3, 4) and uv must refer to the same image (for a stereo pair: rectified
    pixels).  NaN where X or uv is NaN.  Cheirality (points behind the camera)
    is not checked here; see :func:`point_depth`.
    """
    uv = as_points('uv', uv)
    return np.linalg.norm(project(P, X) - uv, axis=1)


def stereo_baseline(left: CameraModel, right: CameraModel) -> float:
    """Return the stereo baseline in metres: the distance between the cameras' centres.

    For ROS rectified pairs this is ``B = -P_right[0, 3] / P_right[0, 0]``
    (horizontal rig) or ``-P_right[1, 3] / P_right[1, 1]`` (vertical rig); the
    general formula uses the centres of ``P_left`` and ``P_right``
    (:func:`camera_center`), so any rig layout works.  0.0 means the two P
    describe the same viewpoint (not a stereo pair).
    """
    return float(np.linalg.norm(camera_center(right.P) - camera_center(left.P)))
