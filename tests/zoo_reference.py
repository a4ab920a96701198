"""The zoo's reference table, torchvision half: one row per (spec, network parameters) pair.

``tests/test_zoo_torchvision.py`` is driven by ``ROWS``; ``tests/zoo_reference_papers.py``
(the timm / paper half) uses the same row type. Fields:

``spec``         the spec file's name in ``specs/`` without ``.arch`` ("resnet50"), as in the papers table.
``reference``    the spec's ``meta reference`` ("torchvision.models.resnet50", the older spelling
                 of "torchvision:resnet50"), built by ``archdsl.reference`` as ``zoo --parity``
                 builds it, or None where there is no runnable reference.
``ref_kwargs``   constructor arguments as ``meta reference_args`` would give them; the resolver
                 adds ``weights=None`` itself (``{"aux_logits": False, "init_weights": True}``).
``params``       trainable parameters of the reference built with ``ref_kwargs`` (its default classes);
                 the spec's ``graph.total_params`` must equal it.
``input``        the spec's default input shape, batch excluded: (C, H, W).
``alt_size``     a second square input size for the parity check (the spec's ``size`` parameter),
                 or None: fixed-size heads, nets too slow for CI, or a training-only branch that
                 does not fit smaller inputs.
``spec_params``  network parameters passed to ``archdsl.check`` / ``archdsl.load`` ({"aux": False}).
``task``         "classification" (outputs are class scores, ``[classes]``) or "segmentation"
                 (outputs are per-pixel scores at the input resolution, ``[classes, H, W]``, returned
                 by name in a dict as the reference returns them, compared key by key).

Conventions of the specs these rows describe: ``meta reference`` names the model (as
``reference``), ``meta year`` is the year the paper first appeared (arXiv where it did),
``meta top1`` is torchvision's published ImageNet-1K top-1 of its IMAGENET1K_V1 weights, rounded
to two decimals.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZooRow:
    spec: str
    reference: str | None
    ref_kwargs: dict = field(default_factory=dict)
    params: int = 0
    input: tuple = (3, 224, 224)
    alt_size: int | None = None
    spec_params: dict = field(default_factory=dict)
    task: str = "classification"

    @property
    def id(self) -> str:
        """A test id: the spec's stem plus its parameters (``googlenet-aux=False``)."""
        return self.spec + "".join(f"-{k}={v}" for k, v in self.spec_params.items())


def _tv(name: str, params: int, alt_size: int | None = 160, input=(3, 224, 224), ref_kwargs=None,
        spec_params=None) -> ZooRow:
    return ZooRow(name, f"torchvision.models.{name}", dict(ref_kwargs or {}), params, input, alt_size,
                  dict(spec_params or {}))


# Parameter counts: torchvision 0.29 with weights=None and 1000 classes (each equals the
# IMAGENET1K_V1 weights' meta["num_params"] where aux heads agree).
# alt_size None for the largest nets (vgg19, resnet152, resnext101_32x8d, densenet161/201):
# their default size alone keeps the file's runtime within CI's budget.
ROWS: list[ZooRow] = [
    _tv("alexnet", 61_100_840),
    _tv("vgg11", 132_863_336),
    _tv("vgg13", 133_047_848),
    _tv("vgg16", 138_357_544),
    _tv("vgg19", 143_667_240, alt_size=None),
    _tv("vgg16_bn", 138_365_992),
    _tv("googlenet", 13_004_888, ref_kwargs={"aux_logits": True, "init_weights": True}),
    _tv("googlenet", 6_624_904, ref_kwargs={"aux_logits": False, "init_weights": True},
        spec_params={"aux": False}),
    # AuxLogits (training-only) needs Mixed_6e to be at least 17x17: inputs of 299 and up, so the
    # aux row checks the default size only and the aux-free row a smaller one.
    _tv("inception_v3", 27_161_264, alt_size=None, input=(3, 299, 299),
        ref_kwargs={"aux_logits": True, "init_weights": True}),
    _tv("inception_v3", 23_834_568, alt_size=160, input=(3, 299, 299),
        ref_kwargs={"aux_logits": False, "init_weights": True}, spec_params={"aux": False}),
    _tv("resnet18", 11_689_512),
    _tv("resnet34", 21_797_672),
    _tv("resnet50", 25_557_032),
    _tv("resnet101", 44_549_160),
    _tv("resnet152", 60_192_808, alt_size=None),
    _tv("resnext50_32x4d", 25_028_904),
    _tv("resnext101_32x8d", 88_791_336, alt_size=None),
    _tv("wide_resnet50_2", 68_883_240),
    _tv("densenet121", 7_978_856),
    _tv("densenet161", 28_681_000, alt_size=None),
    _tv("densenet169", 14_149_480),
    _tv("densenet201", 20_013_928, alt_size=None),
    _tv("squeezenet1_0", 1_248_424),
    _tv("squeezenet1_1", 1_235_496),
    # ViT-B/16: the position embedding has one entry per patch, so the weights depend on the input
    # size and the second size is a row of its own: size=112 is vit_b_16(image_size=112).
    ZooRow("vit_b_16", "torchvision:vit_b_16", {}, 86_567_656),
    ZooRow("vit_b_16", "torchvision:vit_b_16", {"image_size": 112}, 86_454_760, input=(3, 112, 112),
           spec_params={"size": 112}),
    # Segmentation: 21 classes (Pascal VOC's), outputs `out` and `aux` at the input resolution.
    ZooRow("deeplabv3_resnet50", "torchvision:deeplabv3_resnet50", {"aux_loss": True}, 42_004_074, alt_size=160,
           task="segmentation"),
]
