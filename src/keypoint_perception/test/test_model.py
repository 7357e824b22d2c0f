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
"""Belief-map network: the paper's layer list, shapes, loss, learning."""

import pytest
import torch
from torch import nn

from keypoint_perception.core.model import (
    BeliefMapNet, BeliefNetConfig, belief_loss, count_macs, make_config, symmetric_belief_loss)


def _convs(module):
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_paper_configuration_reproduces_published_layers():
    net = BeliefMapNet(make_config('paper', 7))
    feats = _convs(net.features)
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in feats] == [
        (3, 64, 3), (64, 64, 3), (64, 128, 3), (128, 128, 3), (128, 256, 3)]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.features) == 2
    assert len(net.stages) == 6
    s1 = _convs(net.stages[0])
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in s1] == [
        (256, 128, 3), (128, 128, 3), (128, 128, 3), (128, 512, 1), (512, 7, 1)]
    for stage in net.stages[1:]:
        cs = _convs(stage)
        assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in cs] == [
            (263, 128, 7)] + [(128, 128, 7)] * 4 + [(128, 512, 1), (512, 7, 1)]
        assert sum(isinstance(m, nn.BatchNorm2d) for m in stage.modules()) == 5
    # "hundreds of GMAC at 640x480"
    assert 300e9 < count_macs(make_config('paper', 7)) < 800e9


def test_output_shapes_and_range():
    cfg = make_config('lite', 4)
    net = BeliefMapNet(cfg).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, cfg.input_height, cfg.input_width))
    assert len(out) == cfg.num_stages
    for b in out:
        assert b.shape == (2, 4, cfg.input_height // 4, cfg.input_width // 4)
        assert float(b.min()) >= 0 and float(b.max()) <= 1
    assert count_macs(cfg) < 0.05 * count_macs(make_config('paper', 4))


def test_config_validation_and_roundtrip():
    with pytest.raises(ValueError):
        BeliefNetConfig(input_width=322)
    with pytest.raises(ValueError):
        BeliefNetConfig(stage_kernel=4)
    with pytest.raises(KeyError):
        make_config('huge', 3)
    cfg = make_config('lite', 5)
    assert BeliefNetConfig.from_dict(cfg.to_dict()) == cfg


def test_loss_is_mean_over_stages_and_masks_maps():
    t = torch.zeros(1, 2, 4, 4)
    t[0, 0, 1, 1] = 1
    perfect = t.clamp(1e-6, 1 - 1e-6)
    wrong = 1 - perfect
    assert belief_loss([perfect], t, 'mse') == pytest.approx(0, abs=1e-9)
    assert belief_loss([perfect, wrong], t, 'mse') == pytest.approx(0.5, rel=1e-5)
    w = torch.tensor([[1.0, 0.0]])
    assert belief_loss([wrong], t, 'mse', w) == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(ValueError):
        belief_loss([perfect], t, 'l1')


def test_network_learns_a_blob_position():
    torch.manual_seed(0)
    cfg = BeliefNetConfig(num_keypoints=1, input_width=32, input_height=32,
                          feature_widths=(8, 8, 16), feature_batchnorm=True, num_stages=2,
                          stage_width=16, stage_kernel=3, head_width=16)
    net = BeliefMapNet(cfg)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x = torch.zeros(8, 3, 32, 32)
    t = torch.zeros(8, 1, 8, 8)
    for i in range(8):
        r, c = (i * 3) % 7, (i * 5) % 7
        x[i, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = 1
        t[i, 0, r, c] = 1
    for _ in range(150):
        loss = belief_loss(net(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
    pred = net.eval()(x)[-1].flatten(1).argmax(1)
    assert (pred == t.flatten(1).argmax(1)).float().mean() >= 0.75


def test_symmetric_loss_takes_the_best_labelling_per_sample():
    torch.manual_seed(0)
    t = torch.zeros(2, 2, 4, 4)
    t[:, 0, 0, 0] = 1
    t[:, 1, 3, 3] = 1
    swapped = t[:, [1, 0]]
    pred = [torch.stack([t[0], swapped[1]]).clamp(0.01, 0.99)]  # sample 1 labelled the other way
    both = torch.stack([t, swapped], dim=1)                     # (B, P, J, h, w)
    sym = symmetric_belief_loss(pred, both)
    fixed = belief_loss(pred, t)
    assert sym < 0.5 * fixed
    assert sym == pytest.approx(float(belief_loss([pred[0][:1]], t[:1])), rel=1e-5)
    assert symmetric_belief_loss(pred, t[:, None]) == pytest.approx(float(fixed), rel=1e-5)
    # per sample: both samples matched by one labelling -> equal values, mean = scalar
    per = symmetric_belief_loss(pred, both, reduction='none')
    assert per.shape == (2,)
    assert float(per[0]) == pytest.approx(float(per[1]), rel=1e-5)
    assert float(per.mean()) == pytest.approx(float(sym), rel=1e-6)
    # under the fixed labelling only, sample 1 is the hard one
    per_fixed = symmetric_belief_loss(pred, t[:, None], reduction='none')
    assert float(per_fixed[1]) > 5 * float(per_fixed[0])
    with pytest.raises(ValueError):
        symmetric_belief_loss(pred, both, reduction='sum')
