"""The choice lists of vidzoo's options, defined once.

The command's parser, the training config's checks, the data pipeline and the exporter all read
them from here. Nothing is imported, so ``vidzoo --help`` builds its parser without torch.
"""

AMP_MODES = ("auto", "bf16", "fp16", "none")  # autocast: auto = bf16 (fp16 on older GPUs) on CUDA; on CPU bf16 where native and faster
OPTIMIZERS = ("adamw", "adam", "sgd", "momentum")  # timm's create_optimizer_v2 names
ON_ERROR = ("skip", "raise")  # an unreadable video: the engine's policy (substitute / exclude), or stop
SAMPLING_MODES = ("dense", "uniform")  # frames a stride apart, or one per equal segment
SPLITS = ("train", "val", "test")  # npz splits and split sub-folders
VIEW_MERGES = ("probs", "tokens")  # eval --view-merge: softmax averaged over views / clip tokens merged
EXPORT_FORMATS = ("onnx", "pt2")
EMBED_POOLS = ("vector", "tokens")  # embed --pool: the pooled pre-logits vector, or the last block's token grid
PROBE_HEADS = ("linear", "attentive")  # train --head: linear on the pooled vector, or an attentive pooler + linear
AUGMENT_MODES = ("random", "none")  # train --augment: random clip/crop/flip per epoch, or the eval view every epoch
INFLATION_MODES = ("central_frame", "average")  # 2-D patch kernel -> tubelet kernel
MIXUP_MODES = ("batch", "pair", "elem")  # timm Mixup: one draw per batch, per mirrored pair, per clip
ERASE_MODES = ("const", "rand", "pixel")  # random erasing fill: 0 (the mean), a colour per channel, noise
CLASS_WEIGHTS = ("none", "balanced")  # loss weights: none, or N / (K * n_k) per class (sklearn's "balanced")
LR_SCHEDULES = ("cosine", "multistep")  # after the warmup: cosine to min_lr, or steps at given epochs

__all__ = ["AMP_MODES", "OPTIMIZERS", "ON_ERROR", "SAMPLING_MODES", "SPLITS", "VIEW_MERGES", "EXPORT_FORMATS",
           "EMBED_POOLS", "PROBE_HEADS", "AUGMENT_MODES", "INFLATION_MODES", "MIXUP_MODES", "ERASE_MODES",
           "CLASS_WEIGHTS", "LR_SCHEDULES"]
