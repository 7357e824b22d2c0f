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
"""Checkpoints hold plain data only; loading one never runs code from the file (issue 16 #17)."""

import os
import pickle
import re

from keypoint_perception.core.checkpoint import (CheckpointError, convert_checkpoint, FORMAT,
                                                 load_checkpoint, MODELS_DIR, object_class_dict,
                                                 read_checkpoint_payload, save_checkpoint)
from keypoint_perception.core.model import BeliefMapNet, make_config
from keypoint_perception.core.objects import load_object_class
import numpy as np
import pytest
import torch

WORKSPACE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))


class _WritesMarker:
    """A pickle payload: unpickling it calls ``open(marker, 'w')``, creating the file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _tiny_model():
    object_class = load_object_class('checkerboard')
    model = BeliefMapNet(make_config('lite', object_class.num_keypoints))
    return model, object_class


def _payload(model, object_class, **extra):
    return dict({'config': model.config.to_dict(),
                 'object_class': object_class_dict(object_class),
                 'state_dict': dict(model.state_dict()), 'meta': {}}, **extra)


def test_a_crafted_pickle_payload_is_refused_and_not_executed(tmp_path):
    model, object_class = _tiny_model()
    marker = tmp_path / 'marker'
    path = tmp_path / 'shared_by_someone.pt'
    torch.save(_payload(model, object_class, meta={'note': _WritesMarker(marker)}), path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert not marker.exists()
    message = str(err.value)
    assert '\n' not in message and str(path) in message and 'refused' in message
    assert 'io.open' in message  # names what the file wanted to run (builtins.open)

    # the payload is real: an unrestricted unpickler (the old torch.load(...,
    # weights_only=False)) runs it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_a_plain_pickle_file_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / 'marker'
    path = tmp_path / 'legacy.pt'
    with open(path, 'wb') as f:
        pickle.dump({'config': {}, 'object_class': {}, 'state_dict': _WritesMarker(marker)}, f)
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint(str(path))
    assert not marker.exists()


def test_a_numpy_array_next_to_a_payload_does_not_open_the_legacy_path(tmp_path):
    model, object_class = _tiny_model()
    marker = tmp_path / 'marker'
    path = tmp_path / 'mixed.pt'
    torch.save(_payload(model, object_class, sampler={'loss': np.zeros(3)},
                        meta={'note': _WritesMarker(marker)}), path)
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint(str(path))
    assert not marker.exists()


def test_save_then_load_keeps_weights_and_writes_plain_data(tmp_path):
    model, object_class = _tiny_model()
    path = tmp_path / 'run' / 'best.pt'
    rng_state = np.random.default_rng(5).bit_generator.state
    save_checkpoint(str(path), model, object_class,
                    meta={'step': np.int64(7), 'val': {'mean_px': np.float64(1.5)}},
                    extra={'sampler': {'loss': np.array([np.nan, 2.0])},
                           'numpy_rng': rng_state})
    raw = torch.load(path, weights_only=True)  # nothing but tensors and containers
    assert raw['format'] == FORMAT
    assert type(raw['meta']['step']) is int and type(raw['meta']['val']['mean_px']) is float
    assert raw['sampler']['loss'].dtype == torch.float64
    assert raw['numpy_rng'] == rng_state
    loaded, loaded_class, payload = load_checkpoint(str(path))
    assert not loaded.training
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    assert loaded_class.keypoint_names == object_class.keypoint_names
    np.testing.assert_array_equal(loaded_class.template, object_class.template)
    assert payload['meta']['step'] == 7


def test_saving_an_object_that_would_need_code_to_load_fails_at_save_time(tmp_path):
    model, object_class = _tiny_model()
    path = tmp_path / 'x.pt'
    with pytest.raises(TypeError, match=r"checkpoint\['meta'\]\['when'\]"):
        save_checkpoint(str(path), model, object_class, meta={'when': object()})
    assert not path.exists()


def test_an_older_checkpoint_with_numpy_arrays_is_converted_on_load(tmp_path):
    """The trainer's last.pt used to keep numpy arrays; only numpy's array type is allowed."""
    model, object_class = _tiny_model()
    path = tmp_path / 'last.pt'
    torch.save(_payload(model, object_class, sampler={'loss': np.array([1.0, np.nan])}), path)
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)  # not loadable as plain data
    _, _, payload = load_checkpoint(str(path))
    np.testing.assert_array_equal(payload['sampler']['loss'].numpy(), [1.0, np.nan])
    converted = tmp_path / 'converted.pt'
    convert_checkpoint(str(path), str(converted))
    assert torch.load(converted, weights_only=True)['format'] == FORMAT


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all', b'PK\x03\x04broken zip'])
def test_a_corrupt_file_is_one_clear_error(tmp_path, content):
    path = tmp_path / 'broken.pt'
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert '\n' not in str(err.value) and str(path) in str(err.value)


def test_a_truncated_checkpoint_is_one_clear_error(tmp_path):
    model, object_class = _tiny_model()
    path = tmp_path / 'm.pt'
    save_checkpoint(str(path), model, object_class)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='not a readable checkpoint'):
        load_checkpoint(str(path))


def test_a_dict_without_weights_is_not_a_checkpoint(tmp_path):
    path = tmp_path / 'other.pt'
    torch.save({'weights': torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match='missing config, object_class, state_dict'):
        load_checkpoint(str(path))


def test_the_shipped_models_are_in_the_safe_format():
    shipped = [f for f in os.listdir(MODELS_DIR) if f.endswith('.pt')]
    assert shipped
    for name in shipped:
        payload = read_checkpoint_payload(os.path.join(MODELS_DIR, name))
        assert payload['format'] == FORMAT
        assert type(payload['state_dict']) is dict


def test_every_yaml_read_of_the_workspace_uses_safe_load():
    """yaml.load with the default or full loader can build arbitrary Python objects."""
    unsafe = re.compile(r'yaml\.(load|load_all|full_load|full_load_all|unsafe_load|'
                        r'unsafe_load_all)\(|Loader\s*=\s*(yaml\.)?(Unsafe|Full)?Loader\b')
    found = []
    for folder in ('src', 'tools', 'test', 'launch'):
        for root, _, files in os.walk(os.path.join(WORKSPACE, folder)):
            for name in files:
                if name.endswith('.py'):
                    path = os.path.join(root, name)
                    with open(path, encoding='utf-8') as f:
                        for number, line in enumerate(f, 1):
                            if unsafe.search(line):
                                found.append(f'{path}:{number}: {line.strip()}')
    assert not found, found
