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
"""The belief-map network on a batch of views: preprocessing, forward pass, test-time augmentation.

:class:`KeypointDetector` loads a trained :class:`~.model.BeliefMapNet`
(Heindl et al. 2019) and runs it on a batch of images or windows of images
(both views of a stereo pair in one batch), returning the last stage's
belief maps.  :meth:`KeypointDetector.detect` adds the decode stage for
single images (no stereo).
"""

from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .checkpoint import load_checkpoint, resolve_model_path
from .config import PipelineConfig, TEST_TIME_AUGMENTATIONS
from .heatmaps import merge_rotated_beliefs
from .model import BeliefNetConfig, normalize_images
from .roi import crop_window, PixelWindow
from .views import decode_view, ViewKeypoints


class KeypointDetector:
    """Belief-map network inference on batches of images (torch, CPU or CUDA).

    Attributes:
        model_path: the checkpoint file loaded.
        model: the network, in eval mode on ``device``.
        object_class: the :class:`~.objects.ObjectClass` it was trained for.
        meta: the checkpoint's metadata (provenance, metrics).
        config: the network's :class:`~.model.BeliefNetConfig` (input size,
            stride).
        device: the torch device.
        test_time_augmentation: ``'none'`` or ``'rot180'``.
    """

    def __init__(self, model_path: str, device: str = 'cpu', num_threads: int = 0,
                 test_time_augmentation: str = 'auto'):
        """Load weights.

        Args:
            model_path: checkpoint file or shipped model name.
            device: torch device string.
            num_threads: torch intra-op threads (0 keeps torch's default).
            test_time_augmentation: one of
                :data:`~.config.TEST_TIME_AUGMENTATIONS`, or ``'auto'`` for
                the one the checkpoint was validated with
                (``meta['test_time_augmentation']``, ``'none'`` if absent).
                ``'rot180'`` doubles the network's work.

        Raises:
            FileNotFoundError: unknown model.
            ValueError: unknown test-time augmentation.
        """
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        self.model_path = resolve_model_path(model_path)
        model, self.object_class, checkpoint = load_checkpoint(self.model_path, device)
        self.model = model.to(device)
        self.meta = checkpoint.get('meta', {})
        self.config: BeliefNetConfig = model.config
        self.device = torch.device(device)
        if test_time_augmentation == 'auto':
            test_time_augmentation = self.meta.get('test_time_augmentation', 'none')
        if test_time_augmentation not in TEST_TIME_AUGMENTATIONS:
            raise ValueError(f'unknown test-time augmentation {test_time_augmentation!r}; '
                             f'expected auto or one of {TEST_TIME_AUGMENTATIONS}')
        self.test_time_augmentation = test_time_augmentation

    @property
    def input_size(self) -> Tuple[int, int]:
        """(width, height) of the network input, pixels."""
        return (self.config.input_width, self.config.input_height)

    def cell_size_px(self, window_width: int) -> float:
        """Side of one belief cell in image pixels, for a window (or image) this wide."""
        return self.config.stride * window_width / self.config.input_width

    def preprocess(self, images: Sequence[np.ndarray],
                   windows: Optional[Sequence[Optional[PixelWindow]]] = None) -> torch.Tensor:
        """Resize (H, W, 3) uint8 RGB (or (H, W) grey) images to the input size.

        Args:
            images: the images (not changed).
            windows: optional per-image (x0, y0, w, h) windows (None entries:
                whole image), cut out with :func:`~.roi.crop_window` first.

        Returns:
            (B, 3, h_in, w_in) float32 normalized tensor on the device.
        """
        batch = []
        for n, img in enumerate(images):
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
            if windows is not None and windows[n] is not None:
                img = crop_window(img, windows[n])
            batch.append(cv2.resize(img, self.input_size, interpolation=cv2.INTER_AREA))
        arr = torch.from_numpy(np.stack(batch)).to(self.device)
        return normalize_images(arr)

    @torch.no_grad()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Last-stage belief maps of a preprocessed batch, with test-time augmentation.

        Args:
            batch: (B, 3, h_in, w_in) float32 tensor from :meth:`preprocess`.

        Returns:
            (B, J, h, w) float32 belief maps; with ``'rot180'`` the mean of
            the batch's and its rotated copy's maps (one forward pass of 2B,
            :func:`~.heatmaps.merge_rotated_beliefs`).
        """
        if self.test_time_augmentation == 'rot180':
            both = torch.cat([batch, torch.rot90(batch, 2, dims=(2, 3))])
            out = self.model(both)[-1].float().cpu().numpy()
            n = len(batch)
            return merge_rotated_beliefs(out[:n], out[n:], self.object_class.symmetries)
        return self.model(batch)[-1].float().cpu().numpy()

    def infer(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Last-stage belief maps of whole images, (B, J, h, w) float32 (see :meth:`forward`)."""
        return self.forward(self.preprocess(images))

    def detect(self, images: Sequence[np.ndarray],
               peak_threshold: float = PipelineConfig.peak_threshold) -> List[ViewKeypoints]:
        """Detect keypoints in each image on its own (one batch, no stereo).

        Args:
            images: (H, W, 3) uint8 RGB or (H, W) uint8 grey arrays; sizes may
                differ.
            peak_threshold: minimum belief of a detected keypoint.

        Returns:
            one :class:`~.views.ViewKeypoints` per image (the highest peak of
            each keypoint), in original pixels.
        """
        beliefs = self.infer(images)
        return [decode_view(maps, PixelWindow.whole(img), self.object_class.symmetries,
                            peak_threshold).best()
                for maps, img in zip(beliefs, images)]
