"""Decisions made once before training: device, optimizer, schedule, monitored metrics."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from mnist_tui.config.spec import ExperimentSpec
from mnist_tui.errors import TrainingError


def resolve_device(name: str = "auto") -> torch.device:
    """ "auto" -> cuda when present, else cpu; anything else must be usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainingError(
            f"--device: '{name}' is not a device (try auto, cpu, cuda, cuda:1)"
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"--device {name}: CUDA is not available on this machine; use cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainingError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif device.type != "cpu":
        raise TrainingError(f"--device {name}: only cpu and cuda are supported")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' if n != 1 else ''})"


# Evaluation results do not depend on the batch; on a CPU, batches past a few hundred only
# add page faults (task0's 10,000 test images: 1.05 s at 2048, 0.38 s at 512).
CPU_EVAL_BATCH = 512


def prefers_channels_last(model: nn.Module) -> bool:
    """Whether oneDNN's NHWC kernels beat NCHW for this model on a CPU (measured).

    Conv nets gain 15-60% a step (LeNet-5 7.8 vs 10.2 ms, task8 14.3 vs 21.0 ms). The
    exception is batch norm over very few channels, which NHWC vectorises over channels:
    BatchNorm2d(6) on [64, 6, 28, 28] is 5.1 ms forward+backward NHWC vs 1.0 ms NCHW, while
    from 16 channels on NHWC is as fast or faster (32 channels: 1.8 vs 4.2 ms).
    """
    layers = list(model.modules())
    return any(isinstance(m, nn.Conv2d) for m in layers) and not any(
        isinstance(m, nn.BatchNorm2d) and m.num_features < 16 for m in layers
    )


def make_optimizer(
    spec: ExperimentSpec, params: Any, capturable: bool = False, foreach: bool | None = None
) -> torch.optim.Optimizer:
    """The experiment's optimizer; `capturable` keeps its state on the GPU for CUDA graphs."""
    o = spec.optim
    # capturable: optimizer state stays on the GPU (CUDA graphs); on the CPU the
    # multi-tensor (foreach) kernels are ~3% faster for LeNet-5 (measured)
    cap: dict[str, Any] = {"capturable": True} if capturable else {}
    if foreach is not None:
        cap["foreach"] = foreach
    if o.name == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )
    if o.name == "adam":
        return torch.optim.Adam(
            params,
            lr=o.lr,
            betas=(o.beta1, o.beta2),
            eps=o.eps,
            weight_decay=o.weight_decay,
            **cap,
        )
    if o.name == "adagrad":
        return torch.optim.Adagrad(
            params,
            lr=o.lr,
            eps=o.eps,
            weight_decay=o.weight_decay,
            initial_accumulator_value=o.initial_accumulator,
        )
    if o.name == "adadelta":
        return torch.optim.Adadelta(
            params, lr=o.lr, rho=o.rho, eps=o.eps, weight_decay=o.weight_decay, **cap
        )
    if o.name == "rmsprop":
        return torch.optim.RMSprop(
            params,
            lr=o.lr,
            alpha=o.rho,
            eps=o.eps,
            momentum=o.momentum,
            weight_decay=o.weight_decay,
            **cap,
        )
    raise AssertionError(o.name)  # pragma: no cover - the schema admits no other


def monitored_metric(spec: ExperimentSpec) -> str:
    return spec.monitored_metric  # answered once, by the definition


def best_metric(spec: ExperimentSpec) -> str:
    return spec.best_metric


def make_scheduler(spec: ExperimentSpec, opt: torch.optim.Optimizer) -> Any:
    s = spec.schedule
    if s.name == "reduce_on_plateau":
        mode: Literal["min", "max"] = "min" if monitored_metric(spec).endswith("loss") else "max"
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode=mode, factor=s.factor, patience=s.patience, min_lr=s.min_lr
        )
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=spec.train.epochs, eta_min=s.min_lr
        )
    if s.name == "inverse_time":
        # Keras 2.x SGD(decay=d): lr_t = lr / (1 + d * t), t = updates so far (from 0,
        # never reset between epochs); stepped after every batch, see per_step_schedule
        decay = s.decay
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + decay * t))
    return None


def per_step_schedule(spec: ExperimentSpec) -> bool:
    """Whether the schedule steps after every batch rather than every epoch."""
    return spec.schedule.name == "inverse_time"
