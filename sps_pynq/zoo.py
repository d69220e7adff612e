"""Model zoo (workstation only: imports torch): the networks the project prunes, compiles and runs.

`build(name)` returns a seeded, deterministic model in eval mode. Its BatchNorm layers carry non-trivial
statistics (running mean/var measured on a seeded random batch, random affine scale and shift), so BN folding in
the compiler is really exercised and activations keep a sane range through deep nets, as in a trained model.

| name              | input     | what                                                                        |
| ----------------- | --------- | --------------------------------------------------------------------------- |
| vgg16             | 3x32x32   | CIFAR VGG16: 13 conv3x3 + BN + ReLU, 5 max-pools, Flatten, Linear(512, n)   |
| resnet18          | 3x32x32   | CIFAR ResNet18: 3x3 stem 64, BasicBlocks [2, 2, 2, 2] at 64/128/256/512     |
| resnet20          | 3x32x32   | CIFAR ResNet20: 3x3 stem 16, 3 BasicBlocks per stage at 16/32/64            |
| mnist_cnn         | 1x28x28   | conv 16 - pool - conv 32 - pool - conv 64 - pool - global avg pool - Linear |
| vgg_small         | 1x28x28   | narrow VGG: 6 conv3x3 + BN (32, 32, 64, 64, 128, 128), 3 pools, GAP, Linear |
| resnet20_mnist    | 1x28x28   | resnet20 with a 1-channel stem: 3 BasicBlocks per stage at 16/32/64, 28-14-7 |
| resnet18_imagenet | 3x224x224 | resnet18: 7x7/2 stem, 3x3/2 max-pool, BasicBlocks [2, 2, 2, 2], GAP, FC     |
| resnet50_imagenet | 3x224x224 | resnet50 v1.5: same stem, Bottlenecks [3, 4, 6, 3] (53 convs), GAP, FC      |
| vgg16_imagenet    | 3x224x224 | vgg16_bn: vgg16's 13 conv3x3 + BN and 5 pools, FC 25088-4096-4096-n         |

The *_imagenet models are torchvision's architectures (resnet18, resnet50 v1.5 with the stride on the 3x3 conv,
vgg16_bn), written here (no torchvision dependency): stem conv 7x7 stride 2 pad 3 + BN + ReLU + max-pool 3x3
stride 2 pad 1; shortcuts 1x1 conv (with the stride) + BN where the shape changes; the VGG classifier is
Linear(25088, 4096) + ReLU + Dropout, Linear(4096, 4096) + ReLU + Dropout, Linear(4096, n). Two differences do not
change the function: vgg16_imagenet has no AdaptiveAvgPool2d((7, 7)) (at the fixed 224x224 input the map is 7x7
already; the pool would only add a no-op node to the ONNX graph), and a ResNet shortcut is called `shortcut`,
not `downsample`. Their BatchNorm statistics are measured on 4 images instead of 8 so that `build` stays fast
(about a second for resnet50_imagenet); at the last 7x7 stage that is still 196 samples per channel.
"""
from __future__ import annotations

import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .errors import SpsError

CIFAR = (3, 32, 32)
MNIST = (1, 28, 28)
IMAGENET = (3, 224, 224)


def _conv_bn_relu(c_in: int, c_out: int) -> List[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _vgg(cfg, in_ch: int, num_classes: int, head: str) -> nn.Sequential:
    """VGG-style stack: numbers are conv3x3+BN+ReLU widths, "M" a 2x2 max-pool. head: "flatten" (Linear(c, n) on
    the flattened map), "gap" (global average pool first) or "imagenet" (torchvision's 3-Linear classifier)."""
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
    if head == "imagenet":      # torchvision's classifier on the flattened 7x7 map (its AdaptiveAvgPool2d((7, 7))
        fc = 512 * 7 * 7        # is a no-op at 224x224 and left out)
        layers += [nn.Flatten(), nn.Linear(fc, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                   nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(4096, num_classes)]
        return nn.Sequential(*layers)
    layers += [nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """Identity (an empty Sequential), or 1x1 conv (with the stride) + BN when the stride or width changes."""
    if stride != 1 or c_in != c_out:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential()


class BasicBlock(nn.Module):
    """Two conv3x3+BN, identity shortcut, or 1x1 conv + BN when the stride or width changes."""
    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """torchvision's v1.5 bottleneck: 1x1 to `width`, 3x3 with the stride, 1x1 to 4 * width, each + BN; shortcut as
    in BasicBlock."""
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _stages(block, c: int, widths: List[int], blocks: List[int]) -> Tuple[nn.Sequential, int]:
    """ResNet stages: `blocks[s]` blocks of width `widths[s]`, the first of each stage after the first with stride 2.
    Returns the stages and their output channels."""
    stages = []
    for s, (w, n) in enumerate(zip(widths, blocks)):
        stride = 1 if s == 0 else 2
        stage = []
        for b in range(n):
            stage.append(block(c, w, stride if b == 0 else 1))
            c = w * block.expansion
        stages.append(nn.Sequential(*stage))
    return nn.Sequential(*stages), c


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet: 3x3 stem (in_ch -> widths[0]) + BN + ReLU, stages of BasicBlocks (stride 2 and a
    1x1 shortcut at the start of each stage after the first), global average pool, Flatten, Linear."""

    def __init__(self, widths: List[int], blocks: List[int], num_classes: int, in_ch: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.layers, c = _stages(BasicBlock, widths[0], widths, blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(self.flatten(self.pool(x)))


class ImageNetResNet(nn.Module):
    """torchvision's ResNet: 7x7/2 stem conv + BN + ReLU, 3x3/2 max-pool, 4 stages at 64/128/256/512 (times the
    block's expansion), global average pool, Flatten, Linear."""

    def __init__(self, block, blocks: List[int], num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layers, c = _stages(block, 64, [64, 128, 256, 512], blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
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
    # resnet20 on 1x28x28: maps 28, 14, 7 (19 conv3x3, 2 conv1x1 shortcuts, 0.27 M parameters)
    "resnet20_mnist": (lambda n: CifarResNet([16, 32, 64], [3, 3, 3], n, in_ch=1), MNIST),
    "resnet18_imagenet": (lambda n: ImageNetResNet(BasicBlock, [2, 2, 2, 2], n), IMAGENET),
    "resnet50_imagenet": (lambda n: ImageNetResNet(Bottleneck, [3, 4, 6, 3], n), IMAGENET),
    "vgg16_imagenet": (lambda n: _vgg(_VGG16, 3, n, head="imagenet"), IMAGENET),
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
            # 8 images; 4 at ImageNet size (a 224x224 image costs ~50x more, and 4 still give >= 196 samples per
            # channel at a 7x7 map). Dropout (vgg16_imagenet) is active in this pass, but after every BN.
            model(torch.randn((8 if shape[1] * shape[2] <= 64 * 64 else 4,) + shape, generator=gen))
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
