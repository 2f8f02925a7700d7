"""Compatibility names for the engine's data path, which now lives in one module per job:

* :mod:`vidzoo.engine.data_sources`: ``--data`` paths -> dataset listings and data facts;
* :mod:`vidzoo.engine.pipelines`: a model's input spec -> datasets built with sampler and transforms;
* :mod:`vidzoo.data`: the dataset classes (cached folders/lists, path lists) and
  :class:`~vidzoo.data.InputSpec`, the one reading of a model's ``pretrained_cfg``.
"""
from __future__ import annotations

from ..data import CachedVideoFolder, CachedVideoListDataset, InputSpec, VideoPathDataset
from .data_sources import (LIST_SUFFIXES, SPLIT_NAMES, DataSplits, check_output_outside_data, check_same_classes,
                           data_channels, data_kind, npz_splits, open_dataset, open_eval, open_train_val,
                           split_subfolders)
from .pipelines import RemapLabels, align_classes, build_dataset, check_input_fits, input_spec

configure_dataset = build_dataset  # returns a new dataset; the listing is left as it was
VideoPaths = VideoPathDataset

__all__ = [
    "InputSpec", "CachedVideoFolder", "CachedVideoListDataset", "VideoPathDataset", "VideoPaths", "LIST_SUFFIXES",
    "SPLIT_NAMES", "DataSplits", "check_output_outside_data", "check_same_classes", "data_channels", "data_kind",
    "npz_splits", "open_dataset", "open_eval", "open_train_val", "split_subfolders", "RemapLabels", "align_classes",
    "build_dataset", "configure_dataset", "check_input_fits", "input_spec",
]
