"""Probes: heads trained on a frozen backbone (``vidzoo train --freeze-backbone``).

The backbone (everything but :meth:`~vidzoo.models.VideoTransformer.head_modules`) is frozen:
``requires_grad=False``, eval mode for the whole run (no dropout, no drop-path), run under
``torch.no_grad`` (no activations kept for a backward pass), outside the optimizer and outside
DDP. What trains is one or several :class:`ProbeHead` s, each a fresh copy of the model's head
(attentive pooler when there is one, ``fc_norm``, dropout, classifier) reading the backbone's
features: the pooled vector for a linear head, the tokens for an attentive one. Under DDP the
heads are what :class:`~torch.nn.parallel.DistributedDataParallel` wraps, so only their gradients
are reduced.

``--probe-grid`` trains one head per ``(lr, weight decay)`` pair over the same features in the
same pass, each with its own optimizer, schedule and loss scaler: a head's training is the same
as a single-head run with that lr and weight decay and the same seed (bit for bit on CPU, when the
head has no dropout). A head whose loss becomes NaN / inf is marked diverged and left out of the
selection; the others go on. Each epoch the head with the best validation top-1 (then the lowest
validation loss) is copied into the model, which is what the epoch's checkpoint holds; the run's
best epoch (by the same rule) is saved as the model, so the saved model is a complete classifier
(``eval``, ``predict``, ``export`` and ``embed`` take it) whose provenance says it is a probe over
its backbone.

``--cache-features`` (training clips that are the same every epoch, ``--augment none``): in the
first epoch every training and validation clip is decoded and encoded once, in order (each rank
its shard, then gathered so every rank holds the whole cache), and every epoch, the first
included, trains the heads from the cache. The cache lives in memory: a ``D``-vector per clip for
a linear head (10,000 clips of a ViT-B: 31 MB), the whole token set for an attentive head
(``N x D`` per clip: 4.8 MB per clip of a ViT-B at 16 x 224 x 224, so ~5 GB per 1,000 clips); a
cache larger than 80% of the available memory is refused before it is filled. Unreadable clips
are treated as training treats them: a training clip is substituted by the next readable one
(named in ``train.log``, counted every epoch), a validation clip is excluded.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .distributed import all_gather_object, all_reduce_sum
from .errors import NonFiniteLogitsError, UserError
from .evaluation import EvalResult, make_eval_loader
from .loop import _skips
from .metrics import ClassificationMeter
from .optim import build_optimizer, build_scheduler, current_lr
from .precision import autocast_context
from .trainer import Trainer
from .validation import parse_probe_grid

__all__ = ["ProbeHead", "ProbeHeads", "ProbeTrainer", "prepare_probe", "probe_head_kind", "CACHE_MEMORY_SHARE"]

CACHE_MEMORY_SHARE = 0.8  # the largest share of the available memory a feature cache may take


def probe_head_kind(model: nn.Module) -> str:
    """``'attentive'`` for a model that pools with an attentive pooler, else ``'linear'``."""
    return "attentive" if getattr(model, "global_pool", None) == "attentive" else "linear"


def prepare_probe(model: nn.Module, num_classes: int, head: str | None = None) -> str:
    """Put a fresh ``num_classes`` head on ``model`` and freeze everything else; returns the head kind.

    Args:
        model: A :class:`~vidzoo.models.VideoTransformer`.
        num_classes: Classes of the data.
        head: ``'linear'`` (a classifier on the pooled vector; an attentive model then pools by its
            class token or the mean of its tokens), ``'attentive'`` (a fresh attentive pooler of the
            model's depth and heads, or of one block, + classifier) or None (the model's own kind).
    """
    if not hasattr(model, "head_modules"):
        raise UserError(f"--freeze-backbone needs a vidzoo model (head_modules()); got {type(model).__name__}")
    kind = head or probe_head_kind(model)
    if kind == "attentive":
        pool = getattr(model, "attn_pool", None)
        model.reset_classifier(num_classes, global_pool="attentive",
                               attn_pool_depth=pool.depth if pool is not None else None,
                               attn_pool_heads=pool.num_heads if pool is not None else None)
    elif model.global_pool == "attentive":  # pool as the backbone's own tokens allow
        model.reset_classifier(num_classes, global_pool="token" if model.cls_token is not None else "avg")
    else:
        model.reset_classifier(num_classes)
    model.requires_grad_(False)
    for module in model.head_modules().values():
        module.requires_grad_(True)
    return kind


class ProbeHead(nn.Module):
    """A trainable copy of the model's head: the part of ``forward_head`` after the frozen features
    (attentive pooler for an attentive head, then ``fc_norm``, dropout, classifier).

    Args:
        model: The model whose (fresh) head is copied.
        attentive: Read tokens ``(B, N, D)`` through the pooler; else pooled vectors ``(B, D)``.
    """

    def __init__(self, model: nn.Module, attentive: bool) -> None:
        super().__init__()
        self.attn_pool = copy.deepcopy(model.attn_pool) if attentive else None
        self.fc_norm = copy.deepcopy(model.fc_norm)
        self.head_drop = copy.deepcopy(model.head_drop)
        self.head = copy.deepcopy(model.head)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.attn_pool(features) if self.attn_pool is not None else features
        return self.head(self.head_drop(self.fc_norm(x)))

    def install(self, model: nn.Module) -> None:
        """Copy this head's weights into ``model`` (whose head has the same shape)."""
        for name in ("attn_pool", "fc_norm", "head"):
            mine = getattr(self, name)
            if mine is not None:
                getattr(model, name).load_state_dict(mine.state_dict())


class ProbeHeads(nn.Module):
    """The heads trained together: ``forward(features)`` -> one logits tensor per head."""

    def __init__(self, heads: Sequence[ProbeHead]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        return [h(features) for h in self.heads]


class _CachedTrain(Dataset):
    """Cached training features ``(feature, label, skipped)`` in dataset order; an unreadable clip's
    place holds the next readable one, and says so (as :class:`~vidzoo.data.SubstituteUnreadable`)."""

    def __init__(self, found: dict[int, tuple[torch.Tensor, int]], bad: dict[int, tuple[str, str]], n: int) -> None:
        order, skipped = [], []
        for i in range(n):
            j, names = i, []
            while j not in found:
                names.append("\t".join(bad[j]))
                j = (j + 1) % n
            order.append(j)
            skipped.append("\n".join(names))
        self.x = torch.stack([found[j][0] for j in order])
        self.y = torch.tensor([found[j][1] for j in order])
        self.skipped = skipped

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, str]:
        return self.x[i], self.y[i], self.skipped[i]


@dataclasses.dataclass
class _FeatureCache:
    train: _CachedTrain
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    val_unreadable: list[dict[str, Any]]
    encoded: int  # clips that went through the backbone to fill it
    nbytes: int


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (``MemAvailable``), where the system says."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class ProbeTrainer(Trainer):
    """A :class:`~vidzoo.engine.trainer.Trainer` that trains heads on a frozen backbone (module docstring)."""

    # ----------------------------------------------------------------------------------- setup
    def _fit_head(self, model: nn.Module) -> None:
        """A fresh head for the data's classes, everything else frozen, the model in eval mode for good."""
        self.head_kind = prepare_probe(model, len(self.classes), self.cfg.head)
        model.eval()

    def _wrap_model(self, model: nn.Module) -> nn.Module:
        return model  # the heads train (and are what DDP wraps); the frozen backbone stays outside

    def _setup_optimizer(self) -> None:
        cfg = self.cfg
        try:
            self.grid = parse_probe_grid(cfg.probe_grid, cfg.lr, cfg.resolved_weight_decay())
        except ValueError as e:
            raise UserError(str(e)) from e
        if len(self.grid) > 1 and self.val_loader is None:
            raise UserError("--probe-grid keeps the head with the best validation top-1: give validation data "
                            "(--val-data, --val-split, or a data folder with val/)")
        attentive = self.head_kind == "attentive"
        self.heads = ProbeHeads([ProbeHead(self.model, attentive) for _ in self.grid]).to(self.device)
        self.ddp_heads = self._distributed(self.heads)
        head_cfgs = [dataclasses.replace(cfg, lr=lr, weight_decay=wd) for lr, wd in self.grid]
        peaks = [c.peak_lr(self.dist.world_size) for c in head_cfgs]  # --lr-base-batch scales every head's lr
        self.optimizers = [build_optimizer(h, c, lr=lr) for h, c, lr in zip(self.heads.heads, head_cfgs, peaks)]
        self.schedulers = [build_scheduler(o, c, self.updates_per_epoch, lr=lr)
                           for o, c, lr in zip(self.optimizers, head_cfgs, peaks)]
        fp16 = self.amp_dtype == torch.float16
        self.scalers = [torch.amp.GradScaler("cuda") if fp16 else None for _ in self.grid]
        self.alive = [True] * len(self.grid)
        self.epoch_head = 0  # the head installed in the model (the last epoch's best)
        self.cache: _FeatureCache | None = None

    def _resolved_config(self):
        """The run's config with the head kind it trains (``--head`` left unset: the model's own)."""
        return dataclasses.replace(super()._resolved_config(), head=self.head_kind)

    def _optimizer_text(self) -> str:
        if len(self.grid) == 1:
            return super()._optimizer_text()
        return f"{self.cfg.opt}, each head its own lr and wd (--probe-grid)"

    def _describe(self) -> None:
        super()._describe()
        cfg = self.cfg
        frozen = sum(p.numel() for p in self.model.parameters() if not p.requires_grad)
        trainable = sum(p.numel() for p in self.heads.heads[0].parameters())
        what = (f"one {self.head_kind} head" if len(self.grid) == 1 else
                f"{len(self.grid)} {self.head_kind} heads (--probe-grid: lr "
                f"{', '.join(f'{v:g}' for v in dict.fromkeys(lr for lr, _ in self.grid))} x weight decay "
                f"{', '.join(f'{v:g}' for v in dict.fromkeys(wd for _, wd in self.grid))})")
        self.log(f"probe: backbone frozen ({frozen / 1e6:.2f}M parameters, eval mode, no gradients), {what} of "
                 f"{trainable / 1e3:.1f}K parameters" + (" each" if len(self.grid) > 1 else "") + " trained on its "
                 + ("tokens" if self.head_kind == "attentive" else "pooled vector")
                 + ("; features cached in the first epoch" if cfg.cache_features else ""))
        if cfg.augment == "none":
            self.log("inputs: each training video's evaluation view every epoch (--augment none)")
        if (self.model.pretrained_cfg.get("provenance") or {}).get("kind") == "random_init":
            self.log(f"note: the backbone of {cfg.model} is a random initialisation (no trained weights): the probe "
                     "reads random features; name a tag with weights or a trained model to probe a real backbone")

    # -------------------------------------------------------------------------------- features
    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        """The frozen backbone's output for clips ``x``: tokens for an attentive head, else the pooled vector."""
        x = x.to(self.device, non_blocking=True)
        with torch.no_grad(), autocast_context(self.device, self.amp_dtype):
            tokens = self.model.forward_features(x)
            return tokens if self.head_kind == "attentive" else self.model.pool(tokens)

    def _encode_all(self, dataset: Dataset, total: int, desc: str
                    ) -> tuple[dict[int, tuple[torch.Tensor, int]], list[dict[str, Any]]]:
        """Encode every readable clip of ``dataset`` once (each rank its shard, gathered on every rank):
        ``({index: (features, label)}, unreadable)``."""
        cfg = self.cfg
        loader = make_eval_loader(dataset, cfg.val_batch_size or cfg.batch_size, cfg.workers,
                                  pin_memory=self.device.type == "cuda", on_error=cfg.on_error)
        found: dict[int, tuple[torch.Tensor, int]] = {}
        bad: list[dict[str, Any]] = []
        for x, y, index, unreadable in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True,
                                            disable=None if self.progress else True):
            bad += [u.to_dict() for u in unreadable]
            if x is None:
                continue
            f = self._encode(x).cpu()
            if not found and not self._cache_checked:
                self._check_cache_memory(f[0], total)
            for j, i in enumerate(index.tolist()):
                found[i] = (f[j].clone(), int(y[j]))
        if self.dist.distributed:
            merged: dict[int, tuple[torch.Tensor, int]] = {}
            all_bad: list[dict[str, Any]] = []
            for part, part_bad in all_gather_object((found, bad)):
                merged.update(part)
                all_bad += part_bad
            found, bad = merged, sorted(all_bad, key=lambda u: u["index"])
        return found, bad

    def _check_cache_memory(self, one: torch.Tensor, count: int) -> None:
        self._cache_checked = True
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)  # every rank holds the whole cache
        need = one.numel() * one.element_size() * count * per_node
        available = _available_memory()
        if available is not None and need > CACHE_MEMORY_SHARE * available:
            what = "token set" if self.head_kind == "attentive" else "vector"
            raise UserError(f"--cache-features would keep {need / 2**30:.1f} GiB of features in memory ({count} clips "
                            f"x a {tuple(one.shape)} {what}" + (f" x {per_node} processes" if per_node > 1 else "")
                            + f"), more than {CACHE_MEMORY_SHARE:.0%} of the {available / 2**30:.1f} GiB available; "
                            "use --head linear (one vector per clip) or train without --cache-features")

    def _fill_cache(self) -> _FeatureCache:
        self._cache_checked = False
        n_train = len(self.train_dataset)  # type: ignore[arg-type]
        total = n_train + (len(self.val_dataset) if self.val_dataset is not None else 0)  # type: ignore[arg-type]
        found, bad = self._encode_all(self.train_dataset, total, "cache train")
        if not found:
            u = bad[0]
            raise UserError(f"none of the {n_train} training videos can be read (e.g. '{u['path']}': {u['reason']})")
        named = {u["index"]: (u["path"], u["reason"]) for u in bad}
        train = _CachedTrain(found, named, n_train)
        nbytes = train.x.numel() * train.x.element_size()
        val_x = val_y = None
        val_bad: list[dict[str, Any]] = []
        if self.val_dataset is not None:
            vfound, val_bad = self._encode_all(self.val_dataset, total, "cache val")
            if vfound:
                keys = sorted(vfound)
                val_x = torch.stack([vfound[i][0] for i in keys])
                val_y = torch.tensor([vfound[i][1] for i in keys])
                nbytes += val_x.numel() * val_x.element_size()
        self.log(f"feature cache: {len(found)} training + {0 if val_x is None else len(val_x)} validation clips "
                 f"encoded once ({nbytes / 2**20:.1f} MiB in memory); every epoch trains the head from it")
        encoded = len(found) + (0 if val_x is None else len(val_x))
        return _FeatureCache(train, val_x, val_y, val_bad, encoded, nbytes)

    def _cached_loader(self) -> DataLoader:
        """The cached training features in the order the run's sampler draws the videos this epoch
        (the same order as decoding them would be; ``--balanced-sampler`` included)."""
        assert self.cache is not None
        return DataLoader(self.cache.train, batch_size=self.cfg.batch_size, sampler=self.train_sampler)

    # ----------------------------------------------------------------------------------- epoch
    def _finite(self, losses: Sequence[torch.Tensor]) -> list[bool]:
        """Whether each head's loss is finite on every rank (so every rank marks the same heads)."""
        bad = torch.tensor([0 if torch.isfinite(loss) else 1 for loss in losses], device=self.device)
        if self.dist.distributed:
            all_reduce_sum(bad)
        return [not b for b in bad.tolist()]

    def _diverged(self, k: int, epoch: int, where: str) -> None:
        lr, wd = self.grid[k]
        if len(self.grid) == 1:
            raise UserError(f"the training loss of the probe became NaN/inf ({where}); lower --lr, set --clip-grad "
                            f"1.0, or use --amp none")
        if self.alive[k]:
            self.alive[k] = False
            self.log(f"head lr {lr:g} weight decay {wd:g} diverged (NaN/inf, epoch {epoch + 1}, {where}): left out "
                     "of the selection")
            if not any(self.alive):
                raise UserError("every head of --probe-grid diverged (NaN/inf loss); lower the learning rates")

    def _train_heads(self, loader: DataLoader, cached: bool, epoch: int
                     ) -> tuple[list[dict[str, Any]], list[tuple[str, str]], int]:
        """One pass of every head over ``loader``: per-head training metrics, substitutions, clips encoded."""
        cfg, dev = self.cfg, self.device
        K, accum = len(self.grid), cfg.accum_steps
        self.heads.train()
        meters = [ClassificationMeter(len(self.classes), dev) for _ in range(K)]
        skipped: dict[str, str] = {}  # source -> reason, each unreadable source once
        encoded = 0
        n = len(loader)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=None if self.progress else True,
                   leave=False, dynamic_ncols=True)
        for i, (x, y, *flags) in enumerate(bar):
            if flags:
                for source, reason in _skips(flags[0]):
                    skipped.setdefault(source, reason)
            y = y.to(dev, non_blocking=True)
            if cfg.num_sample > 1 and not cached:  # (B, N, C, T, H, W): N augmented clips of each video
                x, y = x.flatten(0, 1), y.repeat_interleave(cfg.num_sample)
            if cached:
                f = x.to(dev, non_blocking=True)
            else:
                f = self._encode(x)
                encoded += len(y)
            group_start = i - i % accum
            group_size = min(accum, n - group_start)
            step_now = i - group_start == group_size - 1
            no_sync = self.ddp_heads.no_sync() if isinstance(self.ddp_heads, DistributedDataParallel) \
                and not step_now else contextlib.nullcontext()
            with no_sync:
                with autocast_context(dev, self.amp_dtype):
                    logits = self.ddp_heads(f)
                losses = [self.loss_fn(lg.float(), y) for lg in logits]
                for k, ok in enumerate(self._finite(losses)):
                    if not ok:
                        self._diverged(k, epoch, f"batch {i}")
                total = sum(sc.scale(loss / group_size) if sc is not None else loss / group_size
                            for loss, sc in zip(losses, self.scalers))
                total.backward()  # each head's gradient is its own loss's: the heads share no parameter
            if step_now:
                for k, (head, opt, sc) in enumerate(zip(self.heads.heads, self.optimizers, self.scalers)):
                    if self.alive[k]:
                        if cfg.clip_grad is not None:
                            if sc is not None:
                                sc.unscale_(opt)
                            nn.utils.clip_grad_norm_(head.parameters(), cfg.clip_grad)
                        if sc is not None:
                            sc.step(opt)
                            sc.update()
                        else:
                            opt.step()
                    opt.zero_grad(set_to_none=True)
                self.num_updates += 1
                for k, sched in enumerate(self.schedulers):
                    if self.alive[k]:
                        sched.step_update(self.num_updates)
            for k in range(K):
                if self.alive[k]:
                    meters[k].update(logits[k].float(), y, losses[k].item())
            bar.set_postfix(loss=f"{min(loss.item() for loss in losses):.3f}")
        out = [m.compute() for m in meters]  # every head, on every rank: the reductions stay in step
        count = torch.tensor([len(skipped)], dtype=torch.int64, device=dev)
        merged: dict[str, str] = {}
        if all_reduce_sum(count).item():  # a source may be met on several ranks: union, not sum
            for part in all_gather_object(list(skipped.items())):
                for source, reason in part:
                    merged.setdefault(source, reason)
        for m in out:
            m["unreadable"] = len(merged)
        enc = torch.tensor([encoded], dtype=torch.int64, device=dev)
        return out, list(merged.items()), int(all_reduce_sum(enc).item()) if self.dist.distributed else encoded

    @torch.no_grad()
    def _validate_heads(self, epoch: int) -> tuple[list[EvalResult | None], int]:
        """Every head on the validation clips (cached or decoded): one result per head (None: diverged),
        clips encoded."""
        dev, K = self.device, len(self.grid)
        self.heads.eval()
        meters = [ClassificationMeter(len(self.classes), dev) for _ in range(K)]
        nonfinite = torch.zeros(K, dtype=torch.int64, device=dev)
        unreadable: list[dict[str, Any]] = []
        encoded = 0
        if self.cache is not None:
            unreadable = list(self.cache.val_unreadable)
            n = 0 if self.cache.val_x is None else len(self.cache.val_x)
            bs = self.cfg.val_batch_size or self.cfg.batch_size
            shard = range(self.dist.rank * bs, n, bs * self.dist.world_size)  # each rank its batches
            batches = ((self.cache.val_x[s:s + bs], self.cache.val_y[s:s + bs]) for s in shard)
        else:
            def decoded():
                nonlocal encoded
                for x, y, _, bad in self.val_loader:
                    unreadable.extend(u.to_dict() for u in bad)
                    if x is not None:
                        encoded += len(y)
                        yield self._encode(x), y
            batches = decoded()
        for f, y in tqdm(batches, desc="val", leave=False, dynamic_ncols=True, disable=None if self.progress else True):
            f, y = f.to(dev), y.to(dev)
            with autocast_context(dev, self.amp_dtype):
                logits = self.heads(f)
            for k, lg in enumerate(logits):
                lg = lg.float()
                if not self.alive[k]:
                    continue
                if not bool(torch.isfinite(lg).all()):
                    if len(self.grid) == 1:
                        raise NonFiniteLogitsError("the probe's head gave non-finite logits (NaN/inf) on validation "
                                                   "clips; lower --lr or set --clip-grad 1.0")
                    nonfinite[k] += 1  # marked below, on every rank alike
                    continue
                probs = lg.softmax(dim=-1)
                meters[k].update(probs, y, F.nll_loss(probs.clamp_min(1e-12).log(), y))
        results: list[EvalResult | None] = []
        if self.cache is None:
            unreadable = sorted((u for part in all_gather_object(unreadable) for u in part), key=lambda u: u["index"])
        if self.dist.distributed:
            all_reduce_sum(nonfinite)
        for k, meter in enumerate(meters):
            m = meter.compute()
            if self.alive[k] and (nonfinite[k] or m["num_samples"] and not math.isfinite(m["loss"])):
                self._diverged(k, epoch, "validation")
            if not self.alive[k]:
                results.append(None)
                continue
            results.append(EvalResult(loss=m["loss"], top1=m["top1"], topk=m.get(f"top{meter.k}"),
                                      num_samples=m["num_samples"], confusion=meter.confusion.cpu(),
                                      per_class_accuracy=meter.per_class_accuracy(),
                                      samples_per_rank=m["samples_per_rank"], unreadable=unreadable, k=meter.k,
                                      single_prediction=meter.single_prediction() if m["num_samples"] else None))
        enc = torch.tensor([encoded], dtype=torch.int64, device=dev)
        return results, int(all_reduce_sum(enc).item()) if self.dist.distributed else encoded

    def _best_head(self, vals: Sequence[EvalResult | None]) -> int:
        """The alive head with the highest validation top-1, then the lowest loss (the first on a tie);
        without validation the only head."""
        alive = [k for k in range(len(self.grid)) if self.alive[k] and vals[k] is not None]
        if not alive:
            return 0
        return min(alive, key=lambda k: (-vals[k].top1, vals[k].loss, k))

    def _run_epoch(self, epoch: int) -> tuple[dict[str, Any], EvalResult | None]:
        cfg = self.cfg
        record: dict[str, Any] = {"epoch": epoch + 1}
        encoded = 0
        if cfg.cache_features and self.cache is None:
            t0 = time.perf_counter()
            self.cache = self._fill_cache()
            record["cache_s"] = round(time.perf_counter() - t0, 4)
            encoded += self.cache.encoded
        if self.cache is not None:
            train_out, skipped, _ = self._train_heads(self._cached_loader(), True, epoch)
        else:
            train_out, skipped, enc = self._train_heads(self.train_loader, False, epoch)
            encoded += enc
        self._name_unreadable_train(skipped)
        vals: list[EvalResult | None] = [None] * len(self.grid)
        if self.val_loader is not None:
            vals, enc = self._validate_heads(epoch)
            encoded += enc
        best = self._best_head(vals)
        self.epoch_head = best
        self.heads.heads[best].install(self.model)
        record["lr"] = current_lr(self.optimizers[best])
        record.update({f"train_{k}": v for k, v in train_out[best].items()})
        val = vals[best]
        if val is not None:
            record.update(self._val_record(val))
        record["encoded_clips"] = encoded
        if len(self.grid) > 1:
            record["head"] = best
            record["heads"] = [{"lr": lr, "weight_decay": wd, "train_loss": train_out[k]["loss"] if self.alive[k]
                                else None, "val_top1": v.top1 if v is not None else None,
                                "val_loss": v.loss if v is not None else None, "diverged": not self.alive[k]}
                               for k, ((lr, wd), v) in enumerate(zip(self.grid, vals))]
        return record, val

    # ----------------------------------------------------------------------------- checkpoints
    def _optim_state(self) -> dict[str, Any]:
        k = self.epoch_head
        return {"optimizer": self.optimizers[k].state_dict(), "scheduler": self.schedulers[k].state_dict(),
                "scaler": self.scalers[k].state_dict() if self.scalers[k] is not None else None,
                "probe": {"grid": [list(g) for g in self.grid], "head_kind": self.head_kind, "head": k,
                          "alive": list(self.alive), "heads": self.heads.state_dict(),
                          "optimizers": [o.state_dict() for o in self.optimizers],
                          "schedulers": [s.state_dict() for s in self.schedulers],
                          "scalers": [s.state_dict() if s is not None else None for s in self.scalers]}}

    def _load_optim_state(self, ckpt: dict[str, Any], replan: bool) -> None:
        probe = ckpt.get("probe")
        if not isinstance(probe, dict):
            raise UserError("--resume: the checkpoint is not a probe's (--freeze-backbone); resume it without "
                            "--freeze-backbone, or start the probe afresh in another --output")
        grid = [tuple(g) for g in probe["grid"]]
        if grid != self.grid or probe["head_kind"] != self.head_kind:
            raise UserError(f"--resume: the checkpoint trained {len(grid)} {probe['head_kind']} head(s) "
                            f"{grid}, these options give {len(self.grid)} {self.head_kind} head(s) {self.grid}")
        self.heads.load_state_dict(probe["heads"])
        for opt, sched, scaler, o, s, c in zip(self.optimizers, self.schedulers, self.scalers, probe["optimizers"],
                                               probe["schedulers"], probe["scalers"]):
            opt.load_state_dict(o)
            if not replan:
                sched.load_state_dict(s)
            sched.step_update(int(ckpt["num_updates"]))
            if scaler is not None and c is not None:
                scaler.load_state_dict(c)
        self.alive, self.epoch_head = list(probe["alive"]), int(probe["head"])

    # --------------------------------------------------------------------------------- finish
    def _finish(self):
        if len(self.grid) > 1 and self.history:
            for line in grid_table(self.history, self.best_epoch):
                self.log(line)
        return super()._finish()


def grid_table(history: Sequence[dict[str, Any]], best_epoch: int | None) -> list[str]:
    """The ``--probe-grid`` heads as a table: lr, weight decay, best validation top-1 (and its epoch, by
    the rule that chose the saved head), last validation top-1 and loss; the saved head marked ``*``."""
    heads = history[-1].get("heads") or []
    chosen = history[best_epoch - 1].get("head") if best_epoch else None
    lines = [f"{'':2}{'lr':>10} {'wd':>8} {'best val top-1':>15} {'epoch':>6} {'last val top-1':>15} "
             f"{'last val loss':>14}"]
    for k, h in enumerate(heads):
        # the rule that chose the saved head: highest top-1, then lowest loss (then the earliest epoch)
        tops = [(r["heads"][k]["val_top1"], r["heads"][k]["val_loss"], r["epoch"]) for r in history
                if r.get("heads") and r["heads"][k]["val_top1"] is not None]
        best, _, at = max(tops, key=lambda t: (t[0], -t[1], -t[2])) if tops else (None, None, None)
        mark = "*" if k == chosen else " "
        if h["diverged"]:
            last = f"{'diverged':>15} {'':>14}"
        else:
            last = f"{h['val_top1']:>14.2f}% {h['val_loss']:>14.4f}"
        lines.append(f"{mark} {h['lr']:>10g} {h['weight_decay']:>8g} "
                     + (f"{best:>14.2f}% {at:>6}" if best is not None else f"{'-':>15} {'-':>6}") + f" {last}")
    lines.append(f"(*: the saved head, at epoch {best_epoch}: the best validation top-1, then loss, over every epoch "
                 "and head)")
    return lines
