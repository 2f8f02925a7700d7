"""The command's options, each defined once.

An :class:`Option` is a flag with its help, choices, group and CLI default. The options that
several commands share (``--model`` and the model group, ``--sampling``, ``--amp``, ...) are the
constants below; every field of :class:`~vidzoo.engine.config.TrainConfig` carries its own in its
metadata (as ``transformers.HfArgumentParser`` reads dataclass fields), so ``vidzoo train`` is
generated from the config: every field has a flag, ``--help`` shows its default, and the flag names
in error messages come from the same place. Torch-free: ``vidzoo --help`` builds the parser
without importing torch.

Adding a training option is adding a field::

    warmup_lr: float = option_field(Option("learning rate at the start of the warmup", group="optimisation"),
                                     default=0.0)

gives ``vidzoo train --warmup-lr`` (type from the annotation, default from the field).
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any, Callable, Sequence

from .._choices import AMP_MODES, ON_ERROR, SAMPLING_MODES
from .errors import UserError

__all__ = ["Option", "option_field", "parse_overrides", "add_option", "add_config_options", "config_kwargs",
           "config_flag", "document_fields", "required_fields", "INPUTS_HELP", "DEFAULT_TIMELINE_OUTPUT", "MODEL_HELP",
           "MODEL", "PRETRAINED", "WEIGHTS", "NUM_FRAMES", "IMG_SIZE", "SET", "SAMPLING", "FRAME_STRIDE",
           "TRAIN_FRAME_STRIDE", "FRAME_STRIDE_AUTO", "ON_ERROR_OPTION", "BATCH_SIZE", "WORKERS", "DEVICE", "AMP",
           "COMPILE", "PROGRESS"]


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # an Option without a default of its own (dataclasses' MISSING would mean "required")


@dataclass(frozen=True)
class Option:
    """One command-line option.

    Attributes:
        help: What it does (``--help``; the default is appended unless the text states it).
        flag: ``--name`` (default: the field or dest name with ``-`` for ``_``).
        aliases: Other spellings (``--optimizer`` for ``--opt``).
        group: Title of its argument group in ``--help`` (None: the command's own options).
        exclusive: Options of one command with the same key are mutually exclusive.
        choices: The values it accepts.
        metavar: Placeholder(s) in ``--help``.
        type: Parses one command-line string (default: from the config field's annotation).
        action: An argparse action (``store_true``, ``store_false``, ``BooleanOptionalAction``...).
        nargs: As argparse's.
        const: As argparse's (the value of a bare ``--resume``).
        default: The command-line default when it is not the config field's (``--pretrained``:
            None, "the tag decides"); for options outside a config, their default.
        required: The command needs it.
        convert: Command-line value -> config value (``--set KEY=VALUE ...`` -> dict).
    """

    help: str
    flag: str | None = None
    aliases: tuple[str, ...] = ()
    group: str | None = None
    exclusive: str | None = None
    choices: Sequence[str] | None = None
    metavar: str | tuple[str, ...] | None = None
    type: Callable[[str], Any] | None = None
    action: Any = None
    nargs: int | str | None = None
    const: Any = None
    default: Any = UNSET
    required: bool = False
    convert: Callable[[Any], Any] | None = None

    def flag_for(self, name: str) -> str:
        """The flag of this option as field / dest ``name``."""
        return self.flag or "--" + name.replace("_", "-")


def option_field(option: Option, default: Any = MISSING, default_factory: Callable[[], Any] | Any = MISSING) -> Any:
    """A dataclass field carrying ``option``; its default is ``default`` (or ``default_factory()``),
    else the option's own default."""
    if default is MISSING and default_factory is MISSING:
        if option.default is UNSET:
            raise TypeError(f"option {option.flag or option.help!r}: give the field a default")
        default = option.default
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata={"option": option})
    return dataclasses.field(default=default, metadata={"option": option})


def _plain_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; other annotations as they are."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def add_option(container: Any, name: str, option: Option, default: Any = MISSING,
               annotation: Any = None) -> argparse.Action:
    """Add ``option`` as dest ``name`` to a parser or argument group.

    Args:
        container: The parser, argument group or mutually exclusive group.
        name: The dest (the config field's name).
        option: The option.
        default: The config field's default (the option's own wins when it has one).
        annotation: The config field's type, from which a missing ``type`` / ``nargs`` is read
            (``int | None`` -> ``int``; ``bool`` -> a switch; ``tuple[float, float]`` -> two floats).

    Raises:
        TypeError: The option's type cannot be told from its annotation.
    """
    kwargs: dict[str, Any] = dict(help=option.help, dest=name)
    cli_default = option.default if option.default is not UNSET else default
    plain = _plain_type(annotation) if annotation is not None else None
    action, nargs, type_ = option.action, option.nargs, option.type
    if action is None and type_ is None and plain is not None:
        if plain is bool:
            action = "store_true"
        elif typing.get_origin(plain) is tuple:
            args = typing.get_args(plain)
            nargs, type_ = nargs or len(args), args[0]
        elif plain in (int, float, str):
            type_ = plain
        else:
            raise TypeError(f"option {option.flag_for(name)}: cannot tell its type from {annotation!r}; "
                            "give Option(type=...) or Option(action=...)")
    if action is not None:
        kwargs["action"] = action
    if type_ is not None and action not in ("store_true", "store_false"):
        kwargs["type"] = type_
    for key, value in (("nargs", nargs), ("choices", option.choices), ("metavar", option.metavar),
                       ("const", option.const)):
        if value is not None:
            kwargs[key] = value
    if option.required:
        kwargs["required"] = True
    elif cli_default is not MISSING:
        kwargs["default"] = cli_default
    return container.add_argument(option.flag_for(name), *option.aliases, **kwargs)


def _options(cls: type) -> list[tuple[dataclasses.Field, Option]]:
    out = []
    for f in dataclasses.fields(cls):
        option = f.metadata.get("option")
        if not isinstance(option, Option):
            raise TypeError(f"{cls.__name__}.{f.name} has no command-line option: declare it with "
                            f"option_field(Option(help=...), default=...)")
        out.append((f, option))
    return out


def add_config_options(parser: argparse.ArgumentParser, cls: type, group_order: Sequence[str] = (),
                       defer_required: bool = False) -> dict[str | None, Any]:
    """Add an option for every field of the dataclass ``cls`` to ``parser``, grouped by
    ``Option.group`` (groups in ``group_order`` first, the others as they come); returns
    ``{group title: argument group}`` (None: the parser itself) so a command can add options that
    are not config fields (``--threads``).

    With ``defer_required`` the parser does not require the required options: they may come from
    a config file, and the command checks them after merging (:func:`required_fields`)."""
    hints = typing.get_type_hints(cls)
    groups: dict[str | None, Any] = {None: parser}
    for title in group_order:
        groups[title] = parser.add_argument_group(title)
    exclusive: dict[tuple[str | None, str], Any] = {}
    for f, option in _options(cls):
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        container = groups[option.group]
        if option.exclusive:
            key = (option.group, option.exclusive)
            if key not in exclusive:
                exclusive[key] = container.add_mutually_exclusive_group()
            container = exclusive[key]
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else MISSING)
        if defer_required and option.required:
            option = dataclasses.replace(option, required=False)
        add_option(container, f.name, option, default, hints[f.name])
    return groups


def required_fields(cls: type) -> list[str]:
    """The fields of ``cls`` whose option is required."""
    return [f.name for f, option in _options(cls) if option.required]



def config_kwargs(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``cls`` that the parsed command line gives (each option's
    ``convert`` applied; lists of a tuple field made tuples)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f, option in _options(cls):
        value = getattr(args, f.name)
        if option.convert is not None:
            value = option.convert(value)
        elif isinstance(value, list) and typing.get_origin(_plain_type(hints[f.name])) is tuple:
            value = tuple(value)
        out[f.name] = value
    return out


def config_flag(cls: type, name: str) -> str:
    """The command-line flag of field ``name`` of ``cls`` (for error messages)."""
    fields = dataclasses.fields(cls) if dataclasses.is_dataclass(cls) else ()
    option = next((f.metadata.get("option") for f in fields if f.name == name), None)
    return option.flag_for(name) if isinstance(option, Option) else "--" + name.replace("_", "-")


def document_fields(cls: type) -> str:
    """An ``Attributes:`` docstring section from the fields' options (their help and flag)."""
    lines = ["", "    Attributes:"]
    for f, option in _options(cls):
        lines.append(f"        {f.name}: {option.help[:1].upper()}{option.help[1:]} (``{option.flag_for(f.name)}``).")
    return "\n".join(lines) + "\n"


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``['depth=4', 'img_size=(32, 32)', 'qkv_bias=true', 'act_layer=gelu']`` ->
    ``{'depth': 4, 'img_size': (32, 32), 'qkv_bias': True, 'act_layer': 'gelu'}``.

    A value is a Python literal when it parses as one, else a JSON value (``true``, ``null``), else a
    string; the model builder then checks it and names the key and the type it expects
    (``--set depth=one`` -> ``depth must be an integer ...``). ``-`` in a key reads as ``_``.

    Raises:
        UserError: An item has no ``=``.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        key, value = key.strip().replace("-", "_"), value.strip()
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
    return out


# ------------------------------------------------------------------------------ shared options
INPUTS_HELP = ("video files, frame folders (a folder of jpg/png images is one clip) and folders of videos (every "
               "video below them, at any depth, in natural order; a folder laid out as root/<class>/<video> gives "
               "each video its class)")
DEFAULT_TIMELINE_OUTPUT = "vidzoo-timeline"  # predict --timeline without --output
MODEL_HELP = ("a registry name or alias (`vidzoo list`; NAME.TAG loads that tag's weights), a training output "
              "folder (its model/, else checkpoints/best.pth, else last.pth), a saved model folder "
              "(config.json + model.safetensors), a training checkpoint .pth, local-dir:DIR or "
              "hf-hub:org/repo[@revision]")

MODEL = Option(MODEL_HELP, flag="--model", required=True, group="model")
PRETRAINED = Option("registry names: load the tag's weights (the default tag's without one). Default: a name "
                    "with an explicit .tag (timesformer.k400) loads that tag's weights, an untagged name is a "
                    "random initialisation; --no-pretrained keeps a tagged architecture random",
                    flag="--pretrained", action=argparse.BooleanOptionalAction, default=None, group="model")
WEIGHTS = Option("the tag's upstream weights from a local file (e.g. a downloaded pytorch_model.bin) instead of "
                 "the Hub", flag="--weights", metavar="FILE", group="model")
NUM_FRAMES = Option("frames per clip (default: the model's; overrides the model and the sampler)",
                    flag="--num-frames", type=int, default=None, group="model")
IMG_SIZE = Option("frame size (default: the model's; overrides the model and the transforms)",
                  flag="--img-size", type=int, default=None, group="model")
SET = Option("model arguments, e.g. --set depth=4 embed_dim=192 drop_path_rate=0.1 qkv_bias=False (Python or "
             "JSON literals; anything else is a string)",
             flag="--set", nargs="+", action="extend", metavar="KEY=VALUE", default=[], group="model",
             convert=parse_overrides)
SAMPLING = Option("temporal sampling (default: the model's): dense = frames --frame-stride apart, uniform = one "
                  "frame per equal segment of the video", flag="--sampling", choices=SAMPLING_MODES, type=str,
                  default=None, group="input")
FRAME_STRIDE = Option("dense sampling stride (default: the model's frame_sample_rate)", flag="--frame-stride",
                      type=int, default=None, group="input")
FRAME_STRIDE_AUTO = "auto"


def _stride_or_auto(text: str) -> int | str:
    if text.strip().lower() == FRAME_STRIDE_AUTO:
        return FRAME_STRIDE_AUTO
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of frames or 'auto', got {text!r}") from None


TRAIN_FRAME_STRIDE = Option("dense sampling stride (default: the model's frame_sample_rate); auto = the largest "
                            "stride whose clip fits the median training video (the choice is logged and saved)",
                            flag="--frame-stride", type=_stride_or_auto, metavar="N|auto", default=None,
                            group="input")
ON_ERROR_OPTION = Option("unreadable videos: skip them (training substitutes another sample, validation and eval "
                         "exclude the video from every figure; each is named in the log and counted) or raise: "
                         "stop at the first with an error naming it",
                         flag="--on-error", choices=ON_ERROR, type=str, default="skip")
BATCH_SIZE = Option("clips per batch per process", flag="--batch-size", type=int, default=8, group="runtime")
WORKERS = Option("DataLoader worker processes", flag="--workers", type=int, default=0, group="runtime")
DEVICE = Option("auto | cpu | cuda | cuda:N", flag="--device", type=str, default="auto", group="runtime")
AMP = Option("autocast: auto = bf16 on CUDA (fp16 on GPUs without bf16); on a CPU bf16 only where it is native "
             "(AMX / AVX512-BF16) and a start-up probe measures it faster, else fp32 (the choice and why are "
             "printed and recorded); bf16 also forces it on a CPU", flag="--amp", choices=AMP_MODES, type=str,
             default="auto", group="runtime")
COMPILE = Option("torch.compile the model (inductor): the first batches take longer while it compiles; where it "
                 "cannot compile (no C++ compiler, no Triton, an unsupported platform or graph) one line says why "
                 "and the run continues eager", flag="--compile", action="store_true", default=False, group="runtime")
PROGRESS = Option("no progress bars", flag="--no-progress", action="store_false", default=True, group="runtime")
