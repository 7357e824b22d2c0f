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
r"""``keypoints-export``: write a trained network as a self-describing ONNX file.

The file holds the network (dynamic batch), the object class, the
preprocessing and the default test-time augmentation
(:mod:`keypoint_perception.core.onnx_model`), so it is enough to run: pass
it wherever a model is accepted (the node's ``model`` parameter,
``keypoints-demo --model``, ``KeypointDetector``)::

    keypoints-export --model checkerboard_lite --out board.onnx

With ``--int8`` it writes an 8-bit copy for CPUs instead
(:mod:`keypoint_perception.core.quantization`), its activation ranges
calibrated on the views of rendered data sets (``sim-datagen generate``)::

    keypoints-export --model panda --out panda_int8.onnx --int8 \
        --calibration-data data/sim/panda_a --calibration-samples 64
"""

import itertools
import os
import tempfile
from typing import List, Optional

from .cli import ArgumentParser, checked_input, command_line, InputError, positive_int
from .core.checkpoint import load_checkpoint, resolve_model_path
from .core.dataset import iter_samples, list_shards, read_meta
from .core.model import normalize_image_array
from .core.onnx_model import (export_onnx, is_onnx_path, model_object_class, ONNX_OPSET,
                              read_onnx_model)


@command_line('keypoints-export')
def main(argv: Optional[List[str]] = None) -> Optional[int]:
    """Export ``--model`` to ``--out`` and print what the file holds."""
    parser = ArgumentParser(prog='keypoints-export',
                            description='Write a trained network as a self-describing ONNX file '
                                        '(network, object class, preprocessing, test-time '
                                        'augmentation).')
    parser.add_argument('--model', required=True,
                        help='shipped model name (e.g. checkerboard_lite) or checkpoint path; '
                             'with --int8 also an exported float .onnx file')
    parser.add_argument('--out', required=True, help='ONNX file to write (.onnx)')
    parser.add_argument('--opset', type=positive_int, default=ONNX_OPSET,
                        help='ONNX operator set of an export from a checkpoint (default '
                             '%(default)s)')
    parser.add_argument('--int8', action='store_true',
                        help='write an 8-bit copy for CPUs (static quantization; --model may '
                             'then also be an exported float .onnx)')
    parser.add_argument('--calibration-data', nargs='+', default=[], metavar='DIR',
                        help='with --int8: sim_datagen data set folders whose first samples '
                             'calibrate the activation ranges (renders of the class)')
    parser.add_argument('--calibration-samples', type=positive_int, default=64,
                        help='with --int8: stereo samples to calibrate on (2 views each, in '
                             'folder and shard order; default %(default)s)')
    args = parser.parse_args(argv)
    if not is_onnx_path(args.out):
        raise InputError(f'--out {args.out}: the file name must end in .onnx')
    if args.int8 != bool(args.calibration_data):
        raise InputError('--int8 and --calibration-data go together')
    with checked_input(f'--model {args.model}'):
        checkpoint = resolve_model_path(args.model)
        if is_onnx_path(checkpoint) and not args.int8:
            raise InputError(f'--model {args.model}: already an ONNX file')
        if not is_onnx_path(checkpoint):
            load_checkpoint(checkpoint)
        if os.path.abspath(args.out) == os.path.abspath(checkpoint):
            raise InputError(f'--out {args.out}: the same file as --model')
    if args.int8:
        from .core import quantization
        if quantization.ort_quantization is None:
            raise InputError('--int8: quantizing needs the onnx and onnxruntime packages')
        check_calibration_data(args.calibration_data, model_object_class(checkpoint).name)
        return _export_int8(args, checkpoint)
    with checked_input(f'--out {args.out}'):
        info = export_onnx(checkpoint, args.out, args.opset)
    config = info.config
    print(f'wrote {args.out}: {info.object_class.name} ({info.object_class.num_keypoints} '
          f'keypoints), input (B, 3, {config.input_height}, {config.input_width}) float32, '
          f'belief maps (B, {config.num_keypoints}, {config.heatmap_size[0]}, '
          f'{config.heatmap_size[1]}), opset {info.opset}, test-time augmentation '
          f'{info.test_time_augmentation}; from {checkpoint} (sha256 '
          f'{info.source_sha256[:16]}...)')
    return 0


def check_calibration_data(folders: List[str], class_name: str) -> None:
    """Check ``--calibration-data`` before any work: data sets of the model's class.

    Args:
        folders: ``sim_datagen`` data set folders.
        class_name: the object class the model detects.

    Raises:
        InputError: naming the folder that does not exist, holds no complete
            shard (``shard-*.tar``), or was rendered for another class
            (``object_class`` of its ``meta.json``).
    """
    for folder in folders:
        if not os.path.isdir(folder):
            raise InputError(f'--calibration-data {folder}: no such folder')
        if not list_shards(folder):
            raise InputError(f'--calibration-data {folder}: no shards (shard-*.tar) in the '
                             'folder')
        try:
            rendered = read_meta(folder).get('object_class')
        except (OSError, ValueError):
            rendered = None  # a data set without meta.json: its samples say nothing of a class
        if rendered is not None and rendered != class_name:
            raise InputError(f'--calibration-data {folder}: renders of {rendered!r}, the model '
                             f'detects {class_name!r}')


def _export_int8(args, source: str) -> int:
    """``--int8``: the float network (exported to a temporary file if needed), quantized."""
    from .core.quantization import quantize_onnx  # needs onnxruntime.quantization
    from .training.data import views_of_samples
    with tempfile.TemporaryDirectory() as work:
        float_path = source
        if not is_onnx_path(source):
            float_path = os.path.join(work, 'float.onnx')
            with checked_input(f'--model {args.model}'):
                export_onnx(source, float_path, args.opset)
        with checked_input(f'--model {args.model}'):
            info = read_onnx_model(float_path)
            if info.quantization:
                raise InputError(f'--model {args.model}: already an 8-bit copy')
            config = info.config
        with checked_input(f'--calibration-data {" ".join(args.calibration_data)}'):
            samples = list(itertools.islice(itertools.chain.from_iterable(
                map(iter_samples, args.calibration_data)), args.calibration_samples))
            if not samples:
                raise InputError(f'--calibration-data {" ".join(args.calibration_data)}: no '
                                 'samples (shard-*.tar) to calibrate on')
            views = views_of_samples(samples, (config.input_width, config.input_height))
        try:
            report = quantize_onnx(float_path, args.out, normalize_image_array(views.images))
        except RuntimeError as e:  # the 8-bit network failed its check on these views
            raise InputError(f'--calibration-data {" ".join(args.calibration_data)}: {e}')
        except OSError as e:
            raise InputError(f'--out {args.out}: {e}')
    print(f'wrote {args.out}: 8-bit copy of {source}, calibrated on {report.num_views} views '
          f'of {" ".join(args.calibration_data)}; belief maps differ from the float '
          f'network by {report.mean_belief_difference:.4f} on average, '
          f'{report.max_belief_difference:.3f} at most, on those views; strong peaks moved '
          f'by more than a cell: {report.strong_peaks_moved:.1%}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
