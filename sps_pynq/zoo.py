"""Model zoo (workstation only: imports torch): the networks the project prunes, compiles and runs.

`build(name)` returns a seeded, deterministic model in eval mode. Its BatchNorm layers carry non-trivial
statistics (running mean/var measured on a seeded random batch, random affine scale and shift), so BN folding in
the compiler is really exercised and activations keep a sane range through deep nets, as in a trained model.

| name       | input      | what                                                                         |
| ---------- | ---------- | ---------------------------------------------------------------------------- |
| vgg16      | 3x32x32    | CIFAR VGG16: 13 conv3x3 + BN + ReLU, 5 max-pools, Flatten, Linear(512, n)    |
| resnet18   | 3x32x32    | CIFAR ResNet18: 3x3 stem 64, BasicBlocks [2, 2, 2, 2] at 64/128/256/512       |
| resnet20   | 3x32x32    | CIFAR ResNet20: 3x3 stem 16, 3 BasicBlocks per stage at 16/32/64              |
| mnist_cnn  | 1x28x28    | conv 16 - pool - conv 32 - pool - conv 64 - pool - global avg pool - Linear    |
| vgg_small  | 1x28x28    | narrow VGG: 6 conv3x3 + BN (32, 32, 64, 64, 128, 128), 3 pools, GAP, Linear  |
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .errors import SpsError

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)


def _conv_bn_relu(c_in: int, c_out: int) -> List[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _vgg(cfg, in_ch: int, num_classes: int, head: str) -> nn.Sequential:
    """VGG-style stack: numbers are conv3x3+BN+ReLU widths, "M" a 2x2 max-pool."""
    layers: List[nn.Module] = []
    c = in_ch
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += _conv_bn_relu(c, v)
            c = v
    if head == "gap":
        layers.append(nn.AdaptiveAvgPool2d(1))
    layers += [nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two conv3x3+BN, identity shortcut, or 1x1 conv + BN when the stride or width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, widths: List[int], blocks: List[int], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        stages = []
        c = widths[0]
        for s, (w, n) in enumerate(zip(widths, blocks)):
            stride = 1 if s == 0 else 2
            stage = []
            for b in range(n):
                stage.append(BasicBlock(c, w, stride if b == 0 else 1))
                c = w
            stages.append(nn.Sequential(*stage))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(self.flatten(self.pool(x)))


def _mnist_cnn(num_classes: int) -> nn.Sequential:
    # A pool after every conv: the last conv sees most of the digit before the global average (with pools after
    # convs 2 and 3 only, it saw ~1/4 of it and the net stalled at ~95.7 % on the 4,000 MNIST training images;
    # this one reaches ~97.8 % and costs 3.8x fewer MACs).
    return nn.Sequential(*_conv_bn_relu(1, 16), nn.MaxPool2d(2), *_conv_bn_relu(16, 32), nn.MaxPool2d(2),
                         *_conv_bn_relu(32, 64), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_VGG_SMALL = [32, 32, "M", 64, 64, "M", 128, 128, "M"]

# name -> (constructor(num_classes), input shape)
_MODELS: Dict[str, Tuple[Callable[[int], nn.Module], Tuple[int, int, int]]] = {
    "vgg16": (lambda n: _vgg(_VGG16, 3, n, head="flatten"), CIFAR),
    "resnet18": (lambda n: CifarResNet([64, 128, 256, 512], [2, 2, 2, 2], n), CIFAR),
    "resnet20": (lambda n: CifarResNet([16, 32, 64], [3, 3, 3], n), CIFAR),
    "mnist_cnn": (_mnist_cnn, MNIST),
    "vgg_small": (lambda n: _vgg(_VGG_SMALL, 1, n, head="gap"), MNIST),
}


def names() -> List[str]:
    return list(_MODELS)


def _lookup(name: str):
    if name not in _MODELS:
        raise SpsError(f"unknown zoo model {name!r}; known models: {', '.join(_MODELS)}")
    return _MODELS[name]


def input_shape(name: str) -> Tuple[int, int, int]:
    """(C, H, W) of one input image."""
    return _lookup(name)[1]


def build(name: str, num_classes: int = 10, seed: int = 0) -> nn.Module:
    """A zoo model with seeded weights and seeded, realistic BatchNorm statistics, in eval mode.

    The same (name, num_classes, seed) gives bit-identical parameters; the global torch RNG is left untouched.
    """
    make, shape = _lookup(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = make(num_classes)
        gen = torch.Generator().manual_seed(seed + 1)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        with torch.no_grad():
            for bn in bns:
                # random affine, as after training (scale around 1, small shifts)
                bn.weight.copy_(torch.rand(bn.num_features, generator=gen) + 0.5)
                bn.bias.copy_(torch.randn(bn.num_features, generator=gen) * 0.2)
            # running statistics of a seeded random batch (cumulative average: momentum None), so the eval-mode
            # activations are normalized as in a trained net instead of exploding or vanishing
            saved = [bn.momentum for bn in bns]
            for bn in bns:
                bn.reset_running_stats()
                bn.momentum = None
            model.train()
            model(torch.randn((8,) + shape, generator=gen))
            for bn, m in zip(bns, saved):
                bn.momentum = m
    return model.eval()


def export_onnx(model: nn.Module, path, input_shape: Tuple[int, int, int], opset: Optional[int] = None,
                dynamo: bool = False, keep_batchnorm: Optional[bool] = None) -> str:
    """Export `model` to ONNX with a batch-1 input named "input" and an output named "logits".

    dynamo=False: the TorchScript exporter, opset 17 by default; BatchNormalization nodes stay in the graph
    (keep_batchnorm default True) so the compiler's BN folding is exercised.
    dynamo=True: `torch.onnx.export(..., dynamo=True)` (needs onnxscript; works offline), opset 18 by default:
    its version converter cannot go below 18 for these graphs. Its optimizer folds BN into the convs unless
    keep_batchnorm=True (then the graph is exported unoptimized).
    """
    import torch.onnx  # noqa: F401  (explicit: the exporter is a lazily loaded submodule)

    was_training = model.training
    model.eval()
    x = torch.zeros((1,) + tuple(input_shape))
    names = dict(input_names=["input"], output_names=["logits"])
    try:
        if dynamo:
            opset = 18 if opset is None else opset
            if opset < 18:
                raise SpsError(f"export_onnx(dynamo=True) needs opset >= 18 (torch's dynamo exporter emits 18 and "
                               f"its converter cannot lower these graphs to {opset}); use dynamo=False for {opset}")
            try:
                import onnxscript  # noqa: F401
            except ImportError as e:
                raise SpsError("export_onnx(dynamo=True) needs the onnxscript package: pip install onnxscript") from e
            torch.onnx.export(model, (x,), str(path), opset_version=opset, dynamo=True, external_data=False,
                              optimize=not keep_batchnorm, verbose=False, **names)
        else:
            keep = True if keep_batchnorm is None else keep_batchnorm
            with warnings.catch_warnings():          # torch deprecates this exporter; it is still the one that
                warnings.simplefilter("ignore", DeprecationWarning)    # keeps plain Conv/BN graphs at opset 17
                torch.onnx.export(model, (x,), str(path), opset_version=17 if opset is None else opset,
                                  dynamo=False, do_constant_folding=not keep,
                                  training=torch.onnx.TrainingMode.EVAL, **names)
    finally:
        model.train(was_training)
    return str(path)
