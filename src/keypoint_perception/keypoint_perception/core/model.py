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
"""Multi-stage belief-map network for keypoint detection.

The architecture follows Heindl et al. 2019, "3D Robot Pose Estimation from
2D Images" (itself built on Wei et al. 2016, "Convolutional Pose Machines"):

* a VGG-style feature extractor down to 1/4 of the input resolution
  (conv3x3 3->64->64, max-pool, 64->128->128, max-pool, 128->256);
* stage 1: three 3x3 conv(128)+BN+ReLU, 1x1 conv(512)+ReLU, 1x1 conv(J),
  sigmoid;
* stages 2..N: input concat(features, previous belief maps) with 256+J
  channels, five 7x7 conv(128)+BN+ReLU, 1x1 conv(512)+ReLU, 1x1 conv(J),
  sigmoid.

The loss is the mean over stages of a pixel-wise loss against Gaussian target
maps (intermediate supervision).  :data:`PAPER` reproduces the published layer
list (6 stages); :data:`LITE` is a narrow, dilated variant that runs at several
stereo pairs per second on two CPU cores.
"""

from dataclasses import asdict, dataclass, field, replace
from typing import List, Sequence, Tuple

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class BeliefNetConfig:
    """Hyper-parameters of :class:`BeliefMapNet`.

    Attributes:
        num_keypoints: J, number of belief maps (one per keypoint).
        input_width: network input width in pixels (multiple of 4).
        input_height: network input height in pixels (multiple of 4).
        in_channels: image channels (3 for RGB; grey images are replicated).
        feature_widths: channels of the three feature blocks; blocks 1 and 2
            have two 3x3 convs followed by a 2x2 max-pool, block 3 one 3x3
            conv, so the belief maps have stride 4.
        feature_batchnorm: add BatchNorm after every feature conv (the paper's
            VGG trunk has none).
        stem_stride: 1 = the paper's block 1 (two full-resolution convs, then
            max-pool); 2 = a stride-2 first conv replaces the first conv and
            the pool, which quarters the cost of block 1.
        num_stages: N, number of belief-map stages (>= 1).
        stage_width: channels of the stage convs (128 in the paper).
        stage1_kernel: kernel of the three stage-1 convs (3 in the paper).
        stage_kernel: kernel of the five convs of stages 2..N (7 in the paper).
        stage_dilations: dilation of each of the five convs of stages 2..N;
            dilation enlarges the receptive field of the light model cheaply.
        head_width: channels of the 1x1 conv before the output (512 in the
            paper).
    """

    num_keypoints: int = 7
    input_width: int = 640
    input_height: int = 480
    in_channels: int = 3
    feature_widths: Tuple[int, int, int] = (64, 128, 256)
    feature_batchnorm: bool = False
    stem_stride: int = 1
    num_stages: int = 6
    stage_width: int = 128
    stage1_kernel: int = 3
    stage_kernel: int = 7
    stage_dilations: Tuple[int, ...] = field(default=(1, 1, 1, 1, 1))
    head_width: int = 512

    @property
    def stride(self) -> int:
        """Input pixels per belief-map cell (two 2x2 max-pools)."""
        return 4

    def __post_init__(self):
        """Validate the configuration.

        Raises:
            ValueError: on non-positive sizes, an input size that is not a
                multiple of the stride, or an even kernel size.
        """
        if self.num_keypoints < 1 or self.num_stages < 1:
            raise ValueError('num_keypoints and num_stages must be >= 1')
        if self.input_width % self.stride or self.input_height % self.stride:
            raise ValueError(
                f'input size {self.input_width}x{self.input_height} must be a multiple '
                f'of the stride {self.stride}')
        for k in (self.stage1_kernel, self.stage_kernel):
            if k % 2 == 0:
                raise ValueError(f'kernel sizes must be odd, got {k}')
        if self.stem_stride not in (1, 2):
            raise ValueError(f'stem_stride must be 1 or 2, got {self.stem_stride}')
        if len(self.feature_widths) != 3:
            raise ValueError('feature_widths must have three entries')

    @property
    def heatmap_size(self) -> Tuple[int, int]:
        """Belief-map (height, width) in cells: input size / stride."""
        return self.input_height // self.stride, self.input_width // self.stride

    def to_dict(self) -> dict:
        """Plain-Python dict (for checkpoints and YAML)."""
        d = asdict(self)
        d['feature_widths'] = list(self.feature_widths)
        d['stage_dilations'] = list(self.stage_dilations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> 'BeliefNetConfig':
        """Inverse of :meth:`to_dict`; unknown keys raise ``TypeError``."""
        d = dict(d)
        for key in ('feature_widths', 'stage_dilations'):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


#: The published configuration (Heindl et al. 2019): 6 stages, 7x7 stage
#: kernels, 640x480 input.  Set ``num_keypoints`` with :func:`make_config`.
PAPER = BeliefNetConfig()

#: Light configuration for CPUs: 256x192 input, strided stem, 1/4-width trunk,
#: 3 stages of dilated 3x3 convs (receptive field over 120 belief cells, wider
#: than the 64x48 map).
LITE = BeliefNetConfig(
    input_width=256, input_height=192,
    feature_widths=(16, 32, 64), feature_batchnorm=True, stem_stride=2,
    num_stages=3, stage_width=32, stage1_kernel=3, stage_kernel=3,
    stage_dilations=(1, 2, 4, 8, 16), head_width=64)

CONFIGS = {'paper': PAPER, 'lite': LITE}


def make_config(name: str, num_keypoints: int, **overrides) -> BeliefNetConfig:
    """Return a named configuration (``'paper'`` or ``'lite'``) for J keypoints.

    Raises:
        KeyError: for an unknown name.
    """
    if name not in CONFIGS:
        raise KeyError(f'unknown model configuration {name!r}; known: {sorted(CONFIGS)}')
    return replace(CONFIGS[name], num_keypoints=num_keypoints, **overrides)


def _conv(cin: int, cout: int, k: int, bn: bool, dilation: int = 1,
          stride: int = 1) -> List[nn.Module]:
    pad = dilation * (k // 2)
    layers: List[nn.Module] = [nn.Conv2d(cin, cout, k, stride=stride, padding=pad,
                                         dilation=dilation, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return layers


class BeliefStage(nn.Module):
    """One stage: convs, a 1x1 head and a sigmoid over J belief maps."""

    def __init__(self, cin: int, width: int, kernels: Sequence[int],
                 dilations: Sequence[int], head_width: int, num_keypoints: int):
        """Build the stage (all convs keep the spatial size)."""
        super().__init__()
        layers: List[nn.Module] = []
        channels = cin
        for kernel, dilation in zip(kernels, dilations):
            layers += _conv(channels, width, kernel, bn=True, dilation=dilation)
            channels = width
        layers += [nn.Conv2d(channels, head_width, 1), nn.ReLU(inplace=True),
                   nn.Conv2d(head_width, num_keypoints, 1)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (B, C_in, h, w) features to (B, J, h, w) beliefs in [0, 1]."""
        return torch.sigmoid(self.body(x))


class BeliefMapNet(nn.Module):
    """Multi-stage belief-map network (see module docstring)."""

    def __init__(self, config: BeliefNetConfig):
        """Build the network for ``config``."""
        super().__init__()
        self.config = config
        w1, w2, w3 = config.feature_widths
        bn = config.feature_batchnorm
        if config.stem_stride == 1:
            block1 = [*_conv(config.in_channels, w1, 3, bn), *_conv(w1, w1, 3, bn),
                      nn.MaxPool2d(2)]
        else:
            block1 = [*_conv(config.in_channels, w1, 3, bn, stride=2), *_conv(w1, w1, 3, bn)]
        self.features = nn.Sequential(
            *block1,
            *_conv(w1, w2, 3, bn), *_conv(w2, w2, 3, bn), nn.MaxPool2d(2),
            *_conv(w2, w3, 3, bn))
        j = config.num_keypoints
        stages = [BeliefStage(w3, config.stage_width, [config.stage1_kernel] * 3, [1, 1, 1],
                              config.head_width, j)]
        n_convs = len(config.stage_dilations)
        for _ in range(config.num_stages - 1):
            stages.append(BeliefStage(w3 + j, config.stage_width,
                                      [config.stage_kernel] * n_convs,
                                      config.stage_dilations, config.head_width, j))
        self.stages = nn.ModuleList(stages)

    def forward(self, images: torch.Tensor) -> List[torch.Tensor]:
        """Run all stages.

        Args:
            images: (B, C, H, W) float32, normalized as by
                :func:`normalize_images`, H and W multiples of 4.

        Returns:
            list of N tensors (B, J, H/4, W/4), float32 belief maps in [0, 1];
            the last one is the prediction, all are supervised.
        """
        feats = self.features(images)
        beliefs = [self.stages[0](feats)]
        for stage in self.stages[1:]:
            beliefs.append(stage(torch.cat([feats, beliefs[-1]], dim=1)))
        return beliefs


def normalize_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """Convert (B, H, W, C) uint8 RGB images to (B, C, H, W) float32 in [-0.5, 0.5]."""
    return images_uint8.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)


def normalize_image_array(images_uint8: np.ndarray) -> np.ndarray:
    """:func:`normalize_images` in NumPy: the same float32 values, bit for bit.

    Used on the CPU, where it needs no torch thread pool (whose threads
    compete with the inference backend's).

    Args:
        images_uint8: (B, H, W, C) uint8 RGB images.

    Returns:
        (B, C, H, W) float32 C-contiguous array, ``pixel / 255 - 0.5``.
    """
    values = images_uint8.astype(np.float32) / np.float32(255.0) - np.float32(0.5)
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2))


def belief_loss(beliefs: Sequence[torch.Tensor], targets: torch.Tensor,
                kind: str = 'bce', weights: torch.Tensor = None) -> torch.Tensor:
    """Mean over stages of the pixel-wise loss against target belief maps.

    Args:
        beliefs: N tensors (B, J, h, w) in [0, 1] from :class:`BeliefMapNet`.
        targets: (B, J, h, w) float32 Gaussian targets in [0, 1].
        kind: ``'bce'`` (binary cross-entropy) or ``'mse'`` (the L2 belief loss
            of Convolutional Pose Machines).
        weights: optional (B, J) float32 per-map weights (0 masks a map).

    Returns:
        scalar loss (mean over stages, maps and pixels).

    Raises:
        ValueError: for an unknown ``kind``.
    """
    if kind not in ('bce', 'mse'):
        raise ValueError(f'unknown loss {kind!r}')
    total = 0.0
    for stage_beliefs in beliefs:
        if kind == 'bce':
            per_pixel = F.binary_cross_entropy(stage_beliefs.clamp(1e-6, 1 - 1e-6), targets,
                                               reduction='none')
        else:
            per_pixel = (stage_beliefs - targets) ** 2
        per_map = per_pixel.mean(dim=(2, 3))
        if weights is not None:
            per_map = per_map * weights
        total = total + per_map.mean()
    return total / len(beliefs)


def symmetric_belief_loss(beliefs: Sequence[torch.Tensor], targets: torch.Tensor,
                          kind: str = 'bce', reduction: str = 'mean') -> torch.Tensor:
    """Belief loss under the best keypoint labelling of a symmetric object.

    A symmetric object has several equally correct labellings; a fixed rule
    that picks one from the image switches abruptly at some object
    orientations and gives nearly identical images contradictory targets.
    Taking, per sample, the minimum loss over the symmetry permutations of the
    targets (the "min-of-N" loss used for symmetric objects in pose
    estimation, e.g. Rad and Lepetit 2017, BB8) lets the network choose any
    consistent labelling; decoding then relabels canonically.

    Args:
        beliefs: N tensors (B, J, h, w) in [0, 1].
        targets: (B, P, J, h, w) targets, one per symmetry permutation
            (P = 1 for an object without symmetries).
        kind: ``'bce'`` or ``'mse'``, as in :func:`belief_loss`.
        reduction: ``'mean'`` (scalar) or ``'none'`` (one value per sample,
            e.g. for loss-prioritized sampling).

    Returns:
        scalar: mean over samples of the minimum over P of the mean over
        stages, maps and pixels; (B,) per-sample values with
        ``reduction='none'``.

    Raises:
        ValueError: unknown ``kind`` or ``reduction``.
    """
    if kind not in ('bce', 'mse'):
        raise ValueError(f'unknown loss {kind!r}')
    if reduction not in ('mean', 'none'):
        raise ValueError(f'unknown reduction {reduction!r}')
    per_perm = 0.0
    for stage_beliefs in beliefs:
        stage_beliefs = stage_beliefs.unsqueeze(1).expand_as(targets)
        if kind == 'bce':
            per_pixel = F.binary_cross_entropy(stage_beliefs.clamp(1e-6, 1 - 1e-6), targets,
                                               reduction='none')
        else:
            per_pixel = (stage_beliefs - targets) ** 2
        per_perm = per_perm + per_pixel.mean(dim=(2, 3, 4))
    per_sample = (per_perm / len(beliefs)).min(dim=1).values
    return per_sample.mean() if reduction == 'mean' else per_sample


def count_macs(config: BeliefNetConfig) -> int:
    """Multiply-accumulates of one forward pass (convolutions only)."""
    model = BeliefMapNet(config)
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, config.in_channels, config.input_height,
                                 config.input_width))
    for h in handles:
        h.remove()
    return macs
