"""Model registry: small typed builder functions registered by name.

Each builder takes the input shape and class count plus keyword-only parameters whose
type hints (with `Range`/`Length`) are the schema of the experiment's `[model]` table.
The spec loader validates `[model]` against those signatures, so adding a model is
writing one function.
"""

from __future__ import annotations

import inspect
import itertools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from mnist_tui.fields import Help, Length, Range

if TYPE_CHECKING:  # builders import torch when called: validating a file never does
    from torch import nn

InShape = tuple[int, int, int]
Builder = Callable[..., "nn.Module"]
Activation = Literal["relu", "tanh", "sigmoid", "gelu"]
Defaults = Annotated[
    Literal["pytorch", "keras"],
    Help("framework conventions for weight init and batch norm (keras: glorot, BN eps 1e-3)"),
]
Dropout = Annotated[float, Range(ge=0, lt=1)]


class ModelConfigError(ValueError):
    """A parameter combination that types alone cannot rule out (e.g. input too small)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class ModelEntry:
    """A builder by name: a function, or an `nn.Module` subclass (its `__init__` is the
    signature). `file` is the source file of a user's model, None for a shipped one."""

    name: str
    builder: Builder
    doc: str
    file: str | None = None

    def params(self) -> dict[str, tuple[Any, Any]]:
        """Parameter name -> (type hint, default), in declaration order."""
        fn: Any = self.builder
        if inspect.isclass(fn):
            namespace = vars(sys.modules[fn.__module__]) if fn.__module__ in sys.modules else {}
        else:
            namespace = fn.__globals__
        out: dict[str, tuple[Any, Any]] = {}
        for p in inspect.signature(fn).parameters.values():
            if p.kind is inspect.Parameter.KEYWORD_ONLY:
                # evaluated one by one: the return hint names torch, which is not imported
                hint = p.annotation
                if isinstance(hint, str):
                    hint = eval(hint, namespace)
                out[p.name] = (hint, p.default)
        return out


MODELS: dict[str, ModelEntry] = {}
# While a user's model file is imported, its `register_model` calls land here instead of
# in MODELS (see models_user.py): the file's models belong to that file, not the process.
_collecting: list[dict[str, ModelEntry]] = []

B = TypeVar("B", bound=Callable[..., Any])


def register_model(fn: B) -> B:
    """Register a model builder under its own name.

    A builder takes `in_shape` (channels, height, width) and `num_classes`, then
    keyword-only typed parameters: the schema of an experiment's `[model]` table. An
    `nn.Module` subclass with such an `__init__` works too.
    """
    doc = (fn.__doc__ or "").strip().splitlines()[0] if (fn.__doc__ or "").strip() else ""
    target = _collecting[-1] if _collecting else MODELS
    target[fn.__name__] = ModelEntry(fn.__name__, fn, doc)
    return fn


def _act(name: str) -> nn.Module:
    from torch import nn

    act: nn.Module = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[
        name
    ]()
    return act


def _pool(kind: str, size: int = 2) -> nn.Module:
    from torch import nn

    return nn.MaxPool2d(size) if kind == "max" else nn.AvgPool2d(size)


def _dense_stack(
    sizes: list[int], activation: str, dropout: float, batch_norm: bool = False
) -> list[nn.Module]:
    """Linear layers sizes[0] -> sizes[1] -> ... each followed by [BN], act, [dropout]."""
    from torch import nn

    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers.append(nn.Linear(a, b))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(_act(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
    return layers


@register_model
def logreg(in_shape: InShape, num_classes: int) -> nn.Module:
    """Softmax (multinomial logistic) regression: one linear layer on the flat pixels."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), num_classes))


@register_model
def mlp(
    in_shape: InShape,
    num_classes: int,
    *,
    hidden: Annotated[list[int], Length(min=1, max=16), Range(ge=1, le=65536)] = [100, 100],  # noqa: B006
    dropout: Dropout = 0.0,
    activation: Activation = "relu",
    batch_norm: bool = False,
) -> nn.Module:
    """Fully connected network: flat pixels -> hidden layers -> classes."""
    from torch import nn

    layers: list[nn.Module] = [nn.Flatten()]
    layers += _dense_stack([math.prod(in_shape), *hidden], activation, dropout, batch_norm)
    layers.append(nn.Linear(hidden[-1], num_classes))
    return nn.Sequential(*layers)


@register_model
def custom_mlp(
    in_shape: InShape,
    num_classes: int,
    *,
    activation: Activation = "relu",
    dropout: Dropout = 0.0,
) -> nn.Module:
    """The LeNet-5 study's MLP of about LeNet-5's size: 1024-44-120-84-10 (needs 32x32)."""
    from torch import nn

    if in_shape[0] != 1:
        raise ModelConfigError(
            "data.dataset",
            f"custom_mlp takes one channel of 32x32 (its first layer is 1024-44), but the "
            f"data has {in_shape[0]} channels; use lenet5, cnn or mlp for colour images",
        )
    if math.prod(in_shape) != 1024:
        raise ModelConfigError(
            "data.pad",
            f"custom_mlp expects 32x32 inputs (1024 pixels), got {in_shape[1]}x"
            f"{in_shape[2]}; set data.pad = 2",
        )
    layers: list[nn.Module] = [nn.Flatten()]
    layers += _dense_stack([1024, 44, 120, 84], activation, dropout)
    layers.append(nn.Linear(84, num_classes))
    return nn.Sequential(*layers)


def _conv_out(size: int, kernel: int, padding: str) -> int:
    return size if padding == "same" else size - kernel + 1


@register_model
def cnn(
    in_shape: InShape,
    num_classes: int,
    *,
    filters: Annotated[list[int], Length(min=1, max=8), Range(ge=1, le=4096)] = [32],  # noqa: B006
    kernel: Annotated[list[int], Length(min=1, max=8), Range(ge=1, le=15)] = [3],  # noqa: B006
    convs_per_block: Annotated[int, Range(ge=1, le=4)] = 1,
    padding: Literal["valid", "same"] = "valid",
    pool: Literal["max", "avg", "none"] = "max",
    pool_after: Annotated[
        list[bool],
        Length(min=0, max=8),
        Help("per conv block, whether it ends with the pool; empty = every block"),
    ] = [],  # noqa: B006
    batch_norm: bool = False,
    batch_norm_position: Annotated[
        Literal["before_activation", "after_activation"],
        Help("after_activation is Keras' Conv2D(activation=...) then BatchNormalization()"),
    ] = "before_activation",
    conv_dropout: Dropout = 0.0,
    dense: Annotated[list[int], Length(min=0, max=8), Range(ge=1, le=65536)] = [128],  # noqa: B006
    dropout: Dropout = 0.0,
    activation: Activation = "relu",
) -> nn.Module:
    """Conv blocks (conv [BN] act [BN], x convs_per_block, then pool) -> dense -> classes.

    `filters[i]` and `kernel[i]` describe block i; `dropout` sits between dense layers
    (and before the output layer), `conv_dropout` after each block's pooling.
    """
    from torch import nn

    if len(kernel) != len(filters):
        raise ModelConfigError(
            "model.kernel",
            f"needs one kernel size per conv block: filters has {len(filters)} "
            f"entries, kernel has {len(kernel)}",
        )
    if pool_after and len(pool_after) != len(filters):
        raise ModelConfigError(
            "model.pool_after",
            f"needs one entry per conv block: filters has {len(filters)} entries, "
            f"pool_after has {len(pool_after)}",
        )
    channels, h, w = in_shape
    layers: list[nn.Module] = []
    for block, (f, k) in enumerate(zip(filters, kernel, strict=True)):
        for _ in range(convs_per_block):
            layers.append(nn.Conv2d(channels, f, k, padding="same" if padding == "same" else 0))
            unit = [nn.BatchNorm2d(f), _act(activation)] if batch_norm else [_act(activation)]
            if batch_norm_position == "after_activation":
                unit.reverse()
            layers += unit
            channels = f
            h, w = _conv_out(h, k, padding), _conv_out(w, k, padding)
        if pool != "none" and (not pool_after or pool_after[block]):
            layers.append(_pool(pool))
            h, w = h // 2, w // 2
        if conv_dropout:
            layers.append(nn.Dropout(conv_dropout))
        if h < 1 or w < 1:
            raise ModelConfigError(
                "model.filters",
                f"the image shrinks to nothing at conv block {block + 1} "
                f"({in_shape[1]}x{in_shape[2]} input); use fewer blocks, smaller kernels "
                'or padding = "same"',
            )
    layers.append(nn.Flatten())
    sizes = [channels * h * w, *dense]
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), _act(activation)]
        if dropout:
            layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(sizes[-1], num_classes))
    return nn.Sequential(*layers)


@register_model
def minivgg(
    in_shape: InShape,
    num_classes: int,
    *,
    filters: Annotated[list[int], Length(min=1, max=4), Range(ge=1, le=1024)] = [32, 64],  # noqa: B006
    dense: Annotated[int, Range(ge=1, le=65536)] = 512,
    conv_dropout: Dropout = 0.25,
    dropout: Dropout = 0.5,
    batch_norm: bool = True,
) -> nn.Module:
    """Mini VGGNet: blocks of (conv3x3-BN-ReLU) x2 + max-pool + dropout, then dense 512-BN."""
    from torch import nn

    channels, h, w = in_shape
    layers: list[nn.Module] = []
    for f in filters:
        for _ in range(2):
            layers.append(nn.Conv2d(channels, f, 3, padding=1))
            layers.append(nn.ReLU())
            if batch_norm:
                layers.append(nn.BatchNorm2d(f))
            channels = f
        layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout)]
        h, w = h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(channels * h * w, dense), nn.ReLU()]
    if batch_norm:
        layers.append(nn.BatchNorm1d(dense))
    layers += [nn.Dropout(dropout), nn.Linear(dense, num_classes)]
    return nn.Sequential(*layers)


@register_model
def lenet5(
    in_shape: InShape,
    num_classes: int,
    *,
    pool: Literal["max", "avg"] = "max",
    activation: Activation = "relu",
    batch_norm: bool = False,
    dropout: Dropout = 0.0,
    input_pad: Annotated[
        int,
        Range(ge=0, le=8),
        Help(
            "zeros added on each side inside the model, after normalisation and "
            "augmentation (F.pad in forward); data.pad pads black pixels before both"
        ),
    ] = 0,
) -> nn.Module:
    """LeNet-5 on 32x32: C1 conv5x5x6, S2, C3 conv5x5x16, S4, C5 5x5x120, F6 84, output.

    61,706 parameters without batch norm. Batch norm (when on) follows every conv and
    hidden dense layer; dropout follows C5 and F6.
    """
    from torch import nn

    side = (in_shape[1] + 2 * input_pad, in_shape[2] + 2 * input_pad)
    if side != (32, 32):
        raise ModelConfigError(
            "data.pad",
            f"lenet5 expects 32x32 inputs, got {side[0]}x{side[1]}; set data.pad = 2 "
            "(or model.input_pad = 2)",
        )

    def conv(cin: int, cout: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(_act(activation))
        return layers

    layers: list[nn.Module] = [nn.ZeroPad2d(input_pad)] if input_pad else []
    layers += [
        *conv(in_shape[0], 6),
        _pool(pool),
        *conv(6, 16),
        _pool(pool),
        *conv(16, 120),
        nn.Flatten(),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += _dense_stack([120, 84], activation, dropout, batch_norm)
    layers.append(nn.Linear(84, num_classes))
    return nn.Sequential(*layers)


def apply_defaults(model: nn.Module, defaults: str) -> None:
    """Make a PyTorch model start like its Keras counterpart when asked to.

    Keras initialises kernels with Glorot-uniform and biases with zeros, and its batch
    norm uses momentum 0.99 (PyTorch's 0.01) and epsilon 1e-3.
    """
    from torch import nn

    if defaults != "keras":
        return
    for m in model.modules():
        if isinstance(m, nn.Linear | nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.momentum = 0.01
            m.eps = 1e-3


COMMON_PARAMS: dict[str, tuple[Any, Any]] = {"defaults": (Defaults, "pytorch")}


def model_params(name: str) -> dict[str, tuple[Any, Any]]:
    """All parameters a `[model]` table of this model accepts: the builder's plus common."""
    return {**MODELS[name].params(), **COMMON_PARAMS}


def build_model(
    name: str,
    params: dict[str, Any],
    in_shape: InShape,
    num_classes: int = 10,
    *,
    pool_first: bool = True,
    entry: ModelEntry | None = None,
) -> nn.Module:
    """Build a registered model from validated params (see `model_params`).

    `entry` is a user's model (models_user.py loads it from its file); by default the
    shipped model of this name. `pool_first=False` keeps the layer order as written
    (activation, then pooling); the default applies the exact `pool_before_activation`
    rewrite.
    """
    from torch import nn

    entry = entry or MODELS[name]
    kwargs = {k: v for k, v in params.items() if k not in COMMON_PARAMS}
    model = entry.builder(in_shape, num_classes, **kwargs)
    if not isinstance(model, nn.Module):
        where = f" ({entry.file})" if entry.file else ""
        raise ModelConfigError(
            "model.name",
            f"{name}{where} returned {type(model).__name__}, not a torch.nn.Module",
        )
    apply_defaults(model, params.get("defaults", "pytorch"))
    if pool_first and isinstance(model, nn.Sequential):
        model = pool_before_activation(model)
    return model


def pool_before_activation(model: nn.Sequential) -> nn.Sequential:
    """Swap every `activation, MaxPool2d` pair to `MaxPool2d, activation`.

    An exact rewrite: forward values are identical (max commutes with a non-decreasing
    function) and so is every gradient (the pooled-away positions get none either way;
    where a whole window is cut to zero by ReLU its derivative is zero in both orders).
    The activation then runs on a quarter of the elements, forward and backward; on a
    memory-bound CPU that is most of a small conv net's step (task0: 2.3x faster).
    Parameter-free modules swap places, so state_dict keys do not change.
    """
    from torch import nn

    # non-decreasing activations commute with max: act(max(a, b)) == max(act(a), act(b))
    monotone = (nn.ReLU, nn.Tanh, nn.Sigmoid)
    layers = list(model)
    i = 0
    while i < len(layers) - 1:
        if isinstance(layers[i], monotone) and isinstance(layers[i + 1], nn.MaxPool2d):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
            i += 2
        else:
            i += 1
    return nn.Sequential(*layers)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def output_check(model: nn.Module, in_shape: InShape, num_classes: int = 10) -> None:
    """Run one forward pass on a zero batch and check the output shape."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, *in_shape))  # follows the default device (meta in checks)
    shape = tuple(getattr(out, "shape", ()))
    if shape != (2, num_classes):
        raise ModelConfigError(
            "model",
            f"the model's output for a batch of 2 inputs of shape {list(in_shape)} has shape "
            f"{list(shape) if shape else type(out).__name__}; expected [batch, classes] = "
            f"[2, {num_classes}]",
        )
