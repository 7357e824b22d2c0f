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
"""Checkpoint I/O: find, write and read trained keypoint networks (no ROS).

A checkpoint describes itself: the network configuration
(:class:`~.model.BeliefNetConfig`), the object class it was trained for
(:class:`~.objects.ObjectClass`), the weights and provenance metadata.

Model files are exchanged between users, so reading one must never run code
from it.  A checkpoint is a ``torch.save`` file holding only plain data: a
dict with string keys whose values are dicts, lists, tuples, strings,
numbers, booleans, None and tensors (:data:`FORMAT`).  It is read with
``torch.load(..., weights_only=True)``, PyTorch's restricted unpickler that
rebuilds tensors and containers and refuses to import anything else.  A file
that asks for any other object (a pickle payload's ``os.system``, say) is
refused with :class:`CheckpointError` before anything of it is executed.

Checkpoints written before this format (the trainer's ``last.pt`` kept its
sampler priorities as numpy arrays) are read with numpy's array constructor
added to the allowed imports, nothing else, and their arrays are converted to
tensors on load; :func:`convert_checkpoint` rewrites such a file in the
current format.
"""

import os
import pickle
from typing import Any, Optional, Tuple
import zipfile

import numpy as np
import torch

from .model import BeliefMapNet, BeliefNetConfig
from .objects import ObjectClass

#: Folder of the weights shipped with the package.
MODELS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'models')

#: Value of a checkpoint's ``format`` key.
FORMAT = 'keypoint_perception/checkpoint-v2'

#: Keys every checkpoint has.
REQUIRED_KEYS = ('config', 'object_class', 'state_dict')

#: Fully qualified names of the only objects besides torch's own that an
#: older checkpoint may ask the unpickler for: numpy arrays and their dtypes.
LEGACY_NUMPY_GLOBALS = ('numpy.core.multiarray._reconstruct',
                        'numpy._core.multiarray._reconstruct', 'numpy.ndarray', 'numpy.dtype')


class CheckpointError(ValueError):
    """A file is not a checkpoint this package may load (unsafe, corrupt or incomplete)."""


def resolve_model_path(name_or_path: str) -> str:
    """Return the model file of a shipped model name or a file path.

    A name is looked up in :data:`MODELS_DIR` as ``<name>.pt`` (a trained
    checkpoint), else ``<name>.onnx`` (a model shipped only as an exported
    file, e.g. the 8-bit ``<name>_int8`` copies).

    Raises:
        FileNotFoundError: when neither exists.
    """
    if os.path.isfile(name_or_path):
        return name_or_path
    for extension in ('.pt', '.onnx'):
        path = os.path.join(MODELS_DIR, f'{name_or_path}{extension}')
        if os.path.isfile(path):
            return path
    shipped = sorted({os.path.splitext(f)[0] for f in os.listdir(MODELS_DIR)
                      if f.endswith(('.pt', '.onnx'))}) if os.path.isdir(MODELS_DIR) else []
    raise FileNotFoundError(f'no model {name_or_path!r}; shipped models: {shipped}')


def object_class_dict(object_class: ObjectClass) -> dict:
    """Return the YAML-equivalent plain dict of a class (inverse of ``ObjectClass.from_dict``)."""
    out = {'name': object_class.name,
           'keypoints': [{'name': name, 'position': position.tolist()}
                         for name, position in zip(object_class.keypoint_names,
                                                   object_class.template)],
           'skeleton': [list(edge) for edge in object_class.skeleton],
           'symmetries': [list(permutation) for permutation in object_class.symmetries]}
    if object_class.mirror is not None:
        out['mirror'] = list(object_class.mirror)
    out.update(object_class.extra)
    return out


def plain_data(value: Any, where: str = 'checkpoint') -> Any:
    """Copy of ``value`` made of the types a checkpoint may hold.

    numpy arrays become tensors (same dtype and values), numpy scalars Python
    numbers, ``OrderedDict`` and other mappings plain dicts; tensors, str,
    int, float, bool, None, lists and tuples are kept.

    Raises:
        TypeError: for any other type (it would need code to load), or a
            dict key that is not a str or int; the message gives its path
            in the payload.
    """
    if isinstance(value, np.generic):  # before float: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (str, bool, int, float, torch.Tensor)):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f'{where}: key {key!r} is a {type(key).__name__}')
            out[key] = plain_data(item, f'{where}[{key!r}]')
        return out
    if isinstance(value, (list, tuple)):
        items = [plain_data(item, f'{where}[{i}]') for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f'{where} is a {type(value).__module__}.{type(value).__name__}, '
                    'which a checkpoint cannot hold (plain data and tensors only)')


def save_checkpoint(path: str, model: BeliefMapNet, object_class: ObjectClass,
                    meta: Optional[dict] = None, extra: Optional[dict] = None) -> None:
    """Write a self-describing checkpoint atomically (temp file, then rename).

    The file holds ``format`` (:data:`FORMAT`), ``config`` (dict),
    ``object_class`` (YAML-equivalent dict), ``state_dict`` ({name: tensor}),
    ``meta`` (provenance and metrics) and any ``extra`` keys (e.g. optimizer
    state for resuming), all converted by :func:`plain_data`.

    Raises:
        TypeError: if ``meta`` or ``extra`` holds something other than plain
            data, tensors and numpy arrays (nothing is written then).
    """
    payload = {'format': FORMAT, 'config': model.config.to_dict(),
               'object_class': object_class_dict(object_class),
               'state_dict': dict(model.state_dict()), 'meta': meta or {}}
    payload.update(extra or {})
    write_checkpoint_payload(path, payload)


def write_checkpoint_payload(path: str, payload: dict) -> None:
    """Write a checkpoint dict (:func:`plain_data` applied) atomically.

    Raises:
        TypeError: as :func:`plain_data`.
        CheckpointError: if a key of :data:`REQUIRED_KEYS` is missing.
    """
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f'{path}: a checkpoint needs {", ".join(missing)}')
    payload = plain_data(dict(payload, format=FORMAT))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f'{path}.tmp'
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _legacy_numpy_globals() -> list:
    """Return the numpy objects an older checkpoint's arrays are rebuilt with."""
    reconstruct = np.ndarray((0,)).__reduce__()[0]  # numpy's _reconstruct, any numpy version
    dtype_classes = {type(np.dtype(name)) for name in
                     ('float64', 'float32', 'float16', 'int64', 'int32', 'int16', 'int8',
                      'uint8', 'bool')}
    return [reconstruct, np.ndarray, np.dtype, *sorted(dtype_classes, key=str)]


def _unsafe_globals(path: str) -> list:
    """Objects other than torch's own the file's pickle asks for (read, never imported)."""
    finder = getattr(torch.serialization, 'get_unsafe_globals_in_checkpoint', None)
    try:
        return list(finder(path)) if finder is not None else []
    except Exception:  # not a zip checkpoint: no list, the file is refused all the same
        return []


def read_checkpoint_payload(path: str, map_location='cpu') -> dict:
    """Read a checkpoint's dict without executing anything from the file.

    Args:
        path: checkpoint file.
        map_location: torch device for the tensors.

    Returns:
        The checkpoint dict, in the current format: tensors and plain data
        (numpy arrays of older files converted to tensors).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: if the file asks to import anything besides
            tensors and plain containers (and numpy arrays in older files),
            is not a readable ``torch.save`` file, or lacks
            :data:`REQUIRED_KEYS`.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'no checkpoint file {path}')
    try:
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            unsafe = _unsafe_globals(path)
            if not unsafe or not set(unsafe) <= set(LEGACY_NUMPY_GLOBALS) or \
                    not hasattr(torch.serialization, 'safe_globals'):
                raise
            with torch.serialization.safe_globals(_legacy_numpy_globals()):
                payload = torch.load(path, map_location=map_location, weights_only=True)
            payload = plain_data(payload, path)
    except pickle.UnpicklingError as e:
        unsafe = _unsafe_globals(path)
        what = f' (it imports {", ".join(unsafe)})' if unsafe else ''
        raise CheckpointError(
            f'{path}: refused to load: the file asks to run code from it{what}; a checkpoint '
            f'holds only tensors and plain data. Load only model files from people you trust; '
            f'this one was not executed') from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, TypeError, ValueError) as e:
        raise CheckpointError(f'{path}: not a readable checkpoint '
                              f'({" ".join(str(e).split()) or type(e).__name__})') from e
    if not isinstance(payload, dict):
        raise CheckpointError(f'{path}: not a checkpoint (holds a {type(payload).__name__}, '
                              'not a dict)')
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f'{path}: not a checkpoint of this package '
                              f'(missing {", ".join(missing)})')
    return payload


def load_checkpoint(path: str, map_location='cpu'
                    ) -> Tuple[BeliefMapNet, ObjectClass, dict]:
    """Load a checkpoint written by :func:`save_checkpoint` (or an older one).

    Nothing in the file is executed (:func:`read_checkpoint_payload`).

    Returns:
        (model in eval mode, ObjectClass, checkpoint dict).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        CheckpointError: if the file is unsafe, unreadable or not a
            checkpoint of a :class:`~.model.BeliefMapNet` (wrong
            configuration, object class or weights).
    """
    payload = read_checkpoint_payload(path, map_location)
    try:
        config = BeliefNetConfig.from_dict(payload['config'])
        model = BeliefMapNet(config)
        model.load_state_dict(payload['state_dict'])
        object_class = ObjectClass.from_dict(payload['object_class'])
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as e:
        raise CheckpointError(f'{path}: not a usable keypoint network checkpoint '
                              f'({" ".join(str(e).split())})') from e
    model.eval()
    return model, object_class, payload


def convert_checkpoint(source: str, destination: str) -> None:
    """Rewrite a checkpoint (e.g. of an older format) in the current :data:`FORMAT`.

    The weights and every other entry are kept as they are (numpy arrays
    become tensors of the same values); ``source`` is read as safely as by
    :func:`load_checkpoint`.  ``destination`` may equal ``source``.

    Raises:
        FileNotFoundError, CheckpointError: as :func:`read_checkpoint_payload`.
    """
    write_checkpoint_payload(destination, read_checkpoint_payload(source))
