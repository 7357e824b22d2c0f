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
"""
Conversions between ``sensor_msgs/msg/Image`` and NumPy/OpenCV arrays.

Encodings follow ``sensor_msgs/image_encodings``: the named ones (``mono8``,
``mono16``, ``bgr8``, ``rgb8``, ``bgra8``, ``rgba8``, their 16-bit variants,
Bayer and YUV 4:2:2) and the generic OpenCV ones (``8UC1``, ``8UC3``,
``16UC1``, ``32FC1``, ... and ``8U`` = ``8UC1``). Colour conversions and the
8 <-> 16 bit scaling (factor 65535/255) follow upstream cv_bridge's rules:
colour/mono/Bayer/YUV encodings convert among each other with
``cv2.cvtColor``; a generic encoding converts only to an encoding with the
same number of channels, by a change of depth.
"""

import re
import sys

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image

# OpenCV depth name -> (NumPy dtype name, OpenCV depth code, bits).
_DEPTHS = {
    '8U': ('uint8', 0, 8),
    '8S': ('int8', 1, 8),
    '16U': ('uint16', 2, 16),
    '16S': ('int16', 3, 16),
    '32S': ('int32', 4, 32),
    '32F': ('float32', 5, 32),
    '64F': ('float64', 6, 64),
}
_DTYPE_TO_DEPTH = {v[0]: k for k, v in _DEPTHS.items()}

# Named encoding -> (OpenCV depth name, channels, colour family).
_NAMED = {
    'mono8': ('8U', 1, 'GRAY'), 'mono16': ('16U', 1, 'GRAY'),
    'bgr8': ('8U', 3, 'BGR'), 'rgb8': ('8U', 3, 'RGB'),
    'bgr16': ('16U', 3, 'BGR'), 'rgb16': ('16U', 3, 'RGB'),
    'bgra8': ('8U', 4, 'BGRA'), 'rgba8': ('8U', 4, 'RGBA'),
    'bgra16': ('16U', 4, 'BGRA'), 'rgba16': ('16U', 4, 'RGBA'),
    'bayer_rggb8': ('8U', 1, 'BAYER_RGGB'), 'bayer_bggr8': ('8U', 1, 'BAYER_BGGR'),
    'bayer_gbrg8': ('8U', 1, 'BAYER_GBRG'), 'bayer_grbg8': ('8U', 1, 'BAYER_GRBG'),
    'bayer_rggb16': ('16U', 1, 'BAYER_RGGB'), 'bayer_bggr16': ('16U', 1, 'BAYER_BGGR'),
    'bayer_gbrg16': ('16U', 1, 'BAYER_GBRG'), 'bayer_grbg16': ('16U', 1, 'BAYER_GRBG'),
    'yuv422': ('8U', 2, 'YUV422'), 'yuv422_yuy2': ('8U', 2, 'YUV422_YUY2'),
}
_GENERIC = re.compile(r'^(8U|8S|16U|16S|32S|32F|64F)(?:C([0-9]+))?$')

# Marker for "same colour layout, change only the depth" (upstream SAME_FORMAT).
_SAME = None


def _conversion_table():
    """Build {(src family, dst family): [cv2 codes or _SAME]} like upstream."""
    table = {(f, f): [_SAME] for f in ('GRAY', 'RGB', 'BGR', 'RGBA', 'BGRA', 'YUV422')}
    colour = ('GRAY', 'RGB', 'BGR', 'RGBA', 'BGRA')
    for src in colour:
        for dst in colour:
            if src != dst:
                table[(src, dst)] = [getattr(cv2, 'COLOR_%s2%s' % (src, dst))]
    for dst in colour:
        table[('YUV422', dst)] = [getattr(cv2, 'COLOR_YUV2%s_UYVY' % dst)]
        table[('YUV422_YUY2', dst)] = [getattr(cv2, 'COLOR_YUV2%s_YUY2' % dst)]
    # OpenCV names Bayer patterns by the second row's first two pixels.
    for family, cv_name in (('BAYER_RGGB', 'BG'), ('BAYER_BGGR', 'RG'),
                            ('BAYER_GBRG', 'GR'), ('BAYER_GRBG', 'GB')):
        for dst in ('GRAY', 'RGB', 'BGR'):
            table[(family, dst)] = [getattr(cv2, 'COLOR_Bayer%s2%s' % (cv_name, dst))]
    return table


_CONVERSIONS = _conversion_table()


class CvBridgeError(TypeError):
    """Raised by :class:`CvBridge` when a conversion is not possible."""


def _parse_encoding(encoding):
    """Return (depth name, channels, colour family or None) of an encoding."""
    if encoding in _NAMED:
        return _NAMED[encoding]
    match = _GENERIC.match(encoding or '')
    if match:
        channels = int(match.group(2)) if match.group(2) else 1
        if channels < 1:
            raise CvBridgeError('Unrecognized image encoding [%s]' % encoding)
        return match.group(1), channels, None
    raise CvBridgeError('Unrecognized image encoding [%s]' % encoding)


def get_cv_type(encoding):
    """Return the OpenCV type code (e.g. ``cv2.CV_8UC3``) of an encoding."""
    depth, channels, _ = _parse_encoding(encoding)
    return _DEPTHS[depth][1] + ((channels - 1) << 3)


def _conversion_steps(src, dst):
    """Return the list of conversion steps from encoding ``src`` to ``dst``."""
    src_depth, src_ch, src_family = _parse_encoding(src)
    dst_depth, dst_ch, dst_family = _parse_encoding(dst)
    if src_family is None:
        if dst_family is not None:
            raise CvBridgeError(
                '[%s] is not a color format. but [%s] is. The conversion does not make sense'
                % (src, dst))
        if src_ch != dst_ch:
            raise CvBridgeError('[%s] and [%s] do not have the same number of channel'
                                % (src, dst))
        return [_SAME]
    if dst_family is None:
        if src_ch != dst_ch:
            raise CvBridgeError(
                '[%s] is a color format but [%s] is not so they must have the same '
                'OpenCV type, CV_8UC3, CV16UC1 ....' % (src, dst))
        return [_SAME]
    steps = _CONVERSIONS.get((src_family, dst_family))
    if steps is None:
        raise CvBridgeError('Unsupported conversion from [%s] to [%s]' % (src, dst))
    steps = list(steps)
    if _DEPTHS[src_depth][2] != _DEPTHS[dst_depth][2] and src_family != dst_family:
        steps.append(_SAME)
    return steps


def _change_depth(image, src, dst):
    """Convert ``image`` to ``dst``'s depth, scaling between 8 and 16 bits."""
    src_bits = _DEPTHS[_parse_encoding(src)[0]][2]
    dst_dtype_name, _, dst_bits = _DEPTHS[_parse_encoding(dst)[0]]
    dst_dtype = np.dtype(dst_dtype_name)
    if image.dtype == dst_dtype and src_bits == dst_bits:
        return image.copy()
    if src_bits == 8 and dst_bits == 16:
        scale = 65535.0 / 255.0
    elif src_bits == 16 and dst_bits == 8:
        scale = 255.0 / 65535.0
    else:
        scale = 1.0
    values = image.astype(np.float64) * scale if scale != 1.0 else image
    if dst_dtype.kind in 'ui':
        info = np.iinfo(dst_dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dst_dtype)


def cvt_color2(image, src_encoding, dst_encoding):
    """Convert an image array from one encoding to another (upstream ``cvtColor2``)."""
    if dst_encoding in ('', src_encoding):
        return image.copy()
    result = image
    for step in _conversion_steps(src_encoding, dst_encoding):
        if step is _SAME:
            result = _change_depth(result, src_encoding, dst_encoding)
        else:
            try:
                result = cv2.cvtColor(np.ascontiguousarray(result), step)
            except cv2.error as err:
                raise CvBridgeError('cv2.cvtColor from [%s] to [%s] failed: %s'
                                    % (src_encoding, dst_encoding, err)) from err
    return result


class CvBridge:
    """Convert between ``sensor_msgs/msg/Image`` messages and OpenCV images."""

    def encoding_to_dtype_with_channels(self, encoding):
        """Return (NumPy dtype name, number of channels) of an encoding."""
        depth, channels, _ = _parse_encoding(encoding)
        return _DEPTHS[depth][0], channels

    def encoding_to_cvtype2(self, encoding):
        """Return the OpenCV type code of an encoding."""
        return get_cv_type(encoding)

    def dtype_with_channels_to_cvtype2(self, dtype, n_channels):
        """Return the generic encoding name (e.g. ``8UC3``) of a dtype and channel count."""
        name = np.dtype(dtype).name
        if name not in _DTYPE_TO_DEPTH:
            raise CvBridgeError('Unsupported image dtype %s' % name)
        return '%sC%d' % (_DTYPE_TO_DEPTH[name], n_channels)

    def imgmsg_to_cv2(self, img_msg, desired_encoding='passthrough'):
        """
        Convert a ``sensor_msgs/msg/Image`` to a NumPy array (OpenCV image).

        :param img_msg: the image message; ``step`` (row length in bytes, may
            include padding) and ``is_bigendian`` are respected.
        :param desired_encoding: ``'passthrough'`` to keep the message's
            encoding, or an encoding to convert to (e.g. ``'bgr8'``).
        :returns: a new, C-contiguous array in native byte order, shape
            (height, width) for one channel, else (height, width, channels);
            ``None`` for an empty image (0 rows or columns) converted to any
            encoding other than ``'passthrough'``, as upstream.
        :raises CvBridgeError: unknown encoding, malformed data or impossible
            conversion.
        :raises AttributeError: with NumPy 2 when ``is_bigendian`` differs from
            the host's byte order, as upstream (its byte swap calls
            ``ndarray.newbyteorder``, which NumPy 2 removed).
        """
        depth, channels, _ = _parse_encoding(img_msg.encoding)
        dtype = np.dtype(_DEPTHS[depth][0]).newbyteorder('>' if img_msg.is_bigendian else '<')
        height, width, step = int(img_msg.height), int(img_msg.width), int(img_msg.step)
        row_bytes = width * dtype.itemsize * channels
        if step < row_bytes:
            raise CvBridgeError(
                'Image is wrongly formed: step < width * byte_depth * num_channels  or  '
                '%d != %d * %d * %d' % (step, width, dtype.itemsize, channels))
        data = img_msg.data
        if isinstance(data, (list, tuple)):
            data = np.asarray(data, dtype=np.uint8)
        raw = np.frombuffer(data, dtype=np.uint8)
        if raw.size != height * step:
            raise CvBridgeError(
                'Image is wrongly formed: height * step != size  or  %d * %d != %d'
                % (height, step, raw.size))
        if height == 0 or width == 0:
            image = np.zeros((height, width, channels), dtype=dtype)
        else:
            image = np.ndarray(shape=(height, width, channels), dtype=dtype, buffer=raw,
                               strides=(step, dtype.itemsize * channels, dtype.itemsize))
        image = np.array(image, order='C')  # a copy: never a view of the message's data
        if channels == 1:
            image = image.reshape(height, width)
        if bool(img_msg.is_bigendian) == (sys.byteorder == 'little'):
            # Upstream's own byte swap, kept as is: ndarray.newbyteorder() exists in
            # NumPy 1.x only, so with NumPy 2 this raises AttributeError, as upstream.
            image = image.byteswap().newbyteorder()
        if desired_encoding == 'passthrough':
            return image
        if image.size == 0:
            return None  # upstream's cvtColor2 returns an empty cv::Mat, i.e. None
        if desired_encoding == img_msg.encoding:
            return image
        return cvt_color2(image, img_msg.encoding, desired_encoding)

    def cv2_to_imgmsg(self, cvim, encoding='passthrough', header=None):
        """
        Convert a NumPy array (OpenCV image) to a ``sensor_msgs/msg/Image``.

        :param cvim: array of shape (height, width) or (height, width, channels)
            with dtype uint8, int8, uint16, int16, int32, float32 or float64.
        :param encoding: ``'passthrough'`` for the generic encoding of the
            array's type (e.g. ``'8UC3'``), or an encoding whose type matches
            the array (e.g. ``'bgr8'`` for uint8 with 3 channels). No colour
            conversion is done, as upstream.
        :param header: optional ``std_msgs/msg/Header`` to copy into the message.
        :raises CvBridgeError: not an array, unsupported type, or encoding
            incompatible with the array.
        """
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise CvBridgeError('Your input type is not a numpy array')
        if cvim.ndim == 2:
            channels = 1
        elif cvim.ndim == 3:
            channels = cvim.shape[2]
        else:
            raise CvBridgeError('Expected an array of 2 or 3 dimensions, got shape %s'
                                % (cvim.shape,))
        cv_type = self.dtype_with_channels_to_cvtype2(cvim.dtype, channels)
        if encoding == 'passthrough':
            encoding = cv_type
        else:
            depth, enc_channels, _ = _parse_encoding(encoding)
            if '%sC%d' % (depth, enc_channels) != cv_type:
                raise CvBridgeError('encoding specified as %s, but image has incompatible type %s'
                                    % (encoding, cv_type))
        img_msg = Image()
        if header is not None:
            img_msg.header = header
        img_msg.height = int(cvim.shape[0])
        img_msg.width = int(cvim.shape[1])
        img_msg.encoding = encoding
        byteorder = cvim.dtype.byteorder
        img_msg.is_bigendian = byteorder == '>' or (byteorder == '=' and sys.byteorder == 'big')
        img_msg.step = img_msg.width * cvim.dtype.itemsize * channels
        img_msg.data.frombytes(np.ascontiguousarray(cvim).tobytes())
        return img_msg

    def compressed_imgmsg_to_cv2(self, cmprs_img_msg, desired_encoding='passthrough'):
        """
        Decode a ``sensor_msgs/msg/CompressedImage`` (JPEG, PNG, ...) to an array.

        The decoded image is taken as ``bgr8`` (or ``mono8``) for conversions to
        ``desired_encoding``.
        """
        buf = np.frombuffer(bytes(cmprs_img_msg.data), dtype=np.uint8)
        image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CvBridgeError('could not decode compressed image of format %r'
                                % cmprs_img_msg.format)
        if desired_encoding == 'passthrough':
            return image
        source = 'mono8' if image.ndim == 2 else 'bgr8'
        return cvt_color2(image, source, desired_encoding)

    def cv2_to_compressed_imgmsg(self, cvim, dst_format='jpg'):
        """Encode an array as a ``sensor_msgs/msg/CompressedImage`` (``dst_format``: jpg, png)."""
        if not isinstance(cvim, (np.ndarray, np.generic)):
            raise CvBridgeError('Your input type is not a numpy array')
        ok, encoded = cv2.imencode('.' + dst_format, cvim)
        if not ok:
            raise CvBridgeError('could not encode the image as %s' % dst_format)
        msg = CompressedImage()
        msg.format = dst_format
        msg.data.frombytes(encoded.tobytes())
        return msg
