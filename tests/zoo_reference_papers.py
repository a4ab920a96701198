"""Reference figures for the timm and paper-only part of the zoo (tests/test_zoo_papers.py).

One row per spec in ``specs/``:

- ``spec``: the file's name without ``.arch``;
- ``reference``: ``"timm:<model name>"`` where the spec reproduces a timm 1.0 model exactly
  (parameter names, shapes and outputs), else ``None`` (the paper is the reference);
- ``ref_kwargs``: keywords for ``timm.create_model`` besides ``pretrained=False``;
- ``params``: the exact parameter count the spec gives (with ``spec_params``);
- ``paper_params``: ``(figure, step)``: the figure the paper reports, as it prints it, and the
  rounding step that figure implies (``("1.7M", 100_000)``: millions to one decimal); the spec's
  count rounded to that step must give the figure. ``None`` where the paper reports no count;
- ``input``: the input shape (C, H, W) at the spec's defaults;
- ``alt_size``: a second input size the network allows (parity runs there too for timm nets;
  for the others the spec must check there, with the same parameter count where the network
  ends in global pooling), or ``None``;
- ``spec_params``: network parameters passed to ``archdsl.check`` / ``archdsl.load``;
- ``source``: where ``paper_params`` (or ``params``, for timm) comes from.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PaperRow:
    spec: str
    reference: str | None
    params: int
    paper_params: tuple[str, int] | None
    input: tuple
    alt_size: int | None
    ref_kwargs: dict = field(default_factory=dict)
    spec_params: dict = field(default_factory=dict)
    source: str = ""

    @property
    def timm_name(self) -> str | None:
        return self.reference.split(":", 1)[1] if self.reference and self.reference.startswith("timm:") else None


ROWS = [
    PaperRow("lenet5", None, 61_706, ("60K", 10_000), (1, 32, 32), None,
             source="LeCun et al. 1998: about 60,000 trainable parameters"),
    PaperRow("alexnet_2012", None, 60_965_224, ("60M", 10_000_000), (3, 227, 227), None,
             source="Krizhevsky et al. 2012, abstract: '60 million parameters'"),
    PaperRow("zfnet", None, 62_357_608, None, (3, 224, 224), None,
             source="Zeiler & Fergus 2014 report no parameter count"),
    PaperRow("nin", None, 966_986, None, (3, 32, 32), 64,
             source="Lin et al. 2014 report no parameter count"),
    PaperRow("inception_v4", "timm:inception_v4", 42_679_816, None, (3, 299, 299), 107,
             source="timm 1.0 inception_v4"),
    PaperRow("inception_resnet_v2", "timm:inception_resnet_v2", 55_843_464, None, (3, 299, 299), 107,
             source="timm 1.0 inception_resnet_v2"),
    PaperRow("preact_resnet50", "timm:resnetv2_50", 25_549_352, None, (3, 224, 224), 160,
             source="timm 1.0 resnetv2_50"),
    PaperRow("ghostnet_100", "timm:ghostnet_100", 5_182_508, None, (3, 224, 224), 200,
             source="timm 1.0 ghostnet_100"),
    PaperRow("cspdarknet53", "timm:cspdarknet53", 27_642_184, None, (3, 256, 256), 224,
             source="timm 1.0 cspdarknet53 (default input 256, as its weights were tested)"),
    PaperRow("resnet110_cifar", None, 1_727_962, ("1.7M", 100_000), (3, 32, 32), 64,
             source="He et al. 2016 (Deep Residual Learning), Table 6: ResNet-110, 1.7M"),
    PaperRow("preact_resnet164_cifar", None, 1_703_258, ("1.7M", 100_000), (3, 32, 32), 64,
             source="He et al. 2016 (Identity Mappings): ResNet-164, 1.7M"),
    PaperRow("stochastic_depth_resnet110_cifar", None, 1_727_962, ("1.7M", 100_000), (3, 32, 32), 64,
             source="Huang et al. 2016: ResNet-110 (He et al.'s 1.7M)"),
    PaperRow("wrn28_10_cifar", None, 36_479_194, ("36.5M", 100_000), (3, 32, 32), 64,
             source="Zagoruyko & Komodakis 2016: WRN-28-10, 36.5M"),
    PaperRow("resnext29_8x64d_cifar", None, 34_426_698, ("34.4M", 100_000), (3, 32, 32), 64,
             source="Xie et al. 2017, Table 7: ResNeXt-29 8x64d, 34.4M"),
    PaperRow("fractalnet_cifar", None, 76_106_634, None, (3, 32, 32), 64,
             source="Larsson et al. 2017 give no count for this configuration"),
    PaperRow("densenet_bc100_cifar", None, 769_162, ("0.8M", 100_000), (3, 32, 32), 64,
             source="Huang et al. 2017, Table 2: DenseNet-BC (L=100, k=12), 0.8M"),
    # A generator: noise [nz, 1, 1] in, a 64x64 image out (no `classes`, no `size`); its parity with
    # the PyTorch DCGAN example's Generator is tests/test_zoo_new.py's.
    PaperRow("dcgan_generator", None, 3_576_704, None, (100, 1, 1), None,
             source="Radford et al. 2015 report no count; the PyTorch DCGAN example's Generator (nz=100, ngf=64)"),
]

BY_SPEC = {r.spec: r for r in ROWS}
