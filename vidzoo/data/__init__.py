"""vidzoo.data: decoding (PyAV), temporal sampling, clip transforms, datasets, synthetic videos.

Clips are ``(C, T, H, W)`` tensors: ``uint8`` straight from the decoder, float after
``Normalize`` (datasets always return float). Multi-view samples are ``(V, C, T, H, W)``.
"""
from .augment import RAND_AUGMENT_SETS, VideoRandAugment, VideoRandomErasing, parse_rand_augment
from .datasets import (
    VIDEO_EXTENSIONS,
    CachedVideoFolder,
    CachedVideoListDataset,
    ClipDataset,
    NpzVolumeDataset,
    VideoFolder,
    VideoListDataset,
    VideoPathDataset,
    split_indices,
    train_val_split,
)
from .decode import (
    IMAGE_EXTENSIONS,
    UnreadableVideoError,
    VideoDecodeError,
    VideoInfo,
    VideoNotFoundError,
    frame_count,
    is_frame_folder,
    list_frame_files,
    read_video,
    read_video_clips,
    video_info,
)
from .input_spec import InputSpec, eval_pipeline, load_clip, parse_views
from .mixup import VideoMixup
from .sampling import FrameSampler, dense_clip_indices, multi_clip_indices, uniform_segment_indices
from .synthetic import MOTION_DIRECTIONS, default_codec, make_motion_dataset, write_video
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ShortSideResize,
    ThreeCrop,
    ToFloat,
    eval_transforms,
    resize_clip,
    resolve_data_config,
    train_transforms,
)
from .unreadable import (
    UNREADABLE_ERRORS,
    ExcludeUnreadable,
    SubstituteUnreadable,
    Unreadable,
    collate_readable,
)

__all__ = [
    # decode
    "UnreadableVideoError", "VideoDecodeError", "VideoNotFoundError", "VideoInfo", "IMAGE_EXTENSIONS", "video_info",
    "frame_count", "read_video", "read_video_clips",
    "list_frame_files", "is_frame_folder",
    # sampling
    "uniform_segment_indices", "dense_clip_indices", "multi_clip_indices", "FrameSampler",
    # transforms
    "IMAGENET_MEAN", "IMAGENET_STD", "Compose", "ShortSideResize", "Resize", "RandomResizedCrop",
    "CenterCrop", "ThreeCrop", "RandomHorizontalFlip", "ToFloat", "Normalize", "resize_clip",
    "resolve_data_config", "train_transforms", "eval_transforms", "InputSpec", "eval_pipeline", "load_clip",
    "parse_views",
    # clip-level augmentation (one draw per clip, every frame alike)
    "VideoRandAugment", "VideoRandomErasing", "VideoMixup", "parse_rand_augment", "RAND_AUGMENT_SETS",
    # datasets
    "VIDEO_EXTENSIONS", "ClipDataset", "VideoFolder", "VideoListDataset", "NpzVolumeDataset",
    "CachedVideoFolder", "CachedVideoListDataset", "VideoPathDataset", "split_indices", "train_val_split",
    # unreadable videos: substitute (training) or exclude (evaluation)
    "UNREADABLE_ERRORS", "Unreadable", "SubstituteUnreadable", "ExcludeUnreadable", "collate_readable",
    # synthetic
    "MOTION_DIRECTIONS", "default_codec", "write_video", "make_motion_dataset",
]
