"""Data for training and evaluation: ``--data`` parsed, the data sets opened, DataLoaders built.

A back-end stage: it takes shapes and options (an input shape ``(C, H, W)``, a batch size, a
seed), never a spec. What ``--data`` may name (:func:`parse_data`):

* ``digits`` (the default): scikit-learn's bundled handwritten digits, 1,797 real 8 x 8
  grey images of 10 classes; no download. The split is fixed (:func:`digits_split`): the
  images are shuffled by a fixed hash, ordered (stably) by class, and every fifth one goes
  to validation: 360 validation and 1,437 training images, every class in both in proportion;
* ``cifar10:PATH``, ``cifar100:PATH``: torchvision's CIFAR data sets over ``PATH``, its
  ``root`` (the folder that holds ``cifar-10-batches-py`` or ``cifar-100-python``);
* ``mnist:PATH``: torchvision's MNIST over ``PATH`` (which holds ``MNIST/raw/``);
* ``imagefolder:PATH``: images in ``PATH/train/CLASS/*`` and ``PATH/val/CLASS/*``
  (torchvision's ImageFolder, one folder per class, the same classes in both).

Nothing is ever downloaded; torchvision's own integrity checks run as they are.

The digits, MNIST and CIFAR are held as one tensor each (resized to the network's H x W
once, when that fits in memory) and batched by indexing: no per-image Python transform, so
the training loop is not bound by its data. Grey images (digits, MNIST) are replicated to the
network's channel count; colour images (CIFAR, image folders) need 3 channels.

Augmentation (``augment=True``, training split only): none for the digits (they are centred
and small, and the reference results train without it); a random crop with 4 pixels of zero
padding and a horizontal flip for CIFAR; a random crop with 4 pixels of padding for MNIST
(digits must not be mirrored); a random resized crop and a flip for image folders. Validation
is deterministic: resized (image folders: resized to H / 0.875, then centre-cropped).

Sample order and randomness (see :class:`Batches`): the training order of epoch ``e`` is
``torch.randperm(n)`` from a generator seeded with ``seed + e`` (exactly the permutation of
``torch.utils.data.DistributedSampler``), and one process with global batch ``B`` takes
batch ``k`` as positions ``k*B .. (k+1)*B - 1`` of it; with ``distributed=(rank, world)``
each process runs a DistributedSampler over the same permutation (``drop_last``) and takes
per-process batches of ``B / world``, so at every step the processes together see exactly
the samples one process sees. The random crop and flip of an image are a hash of
``(seed, epoch, image index)``: the same whatever the batch, worker count, process count or
resumed position. No loader draws from torch's global generator.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from .errors import ArchError, did_you_mean

KINDS = {"digits": "scikit-learn's bundled handwritten digits (no PATH)",
         "cifar10": "torchvision's CIFAR-10 under PATH",
         "cifar100": "torchvision's CIFAR-100 under PATH",
         "mnist": "torchvision's MNIST under PATH",
         "imagefolder": "PATH/train/CLASS/* and PATH/val/CLASS/* images"}
NAMES = {"digits": "the digits", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST",
         "imagefolder": "the image folder"}

# Per-channel normalisation: the published statistics of each data set's training split
# (the digits' are computed from its split; image folders use ImageNet's).
STATS = {"mnist": ((0.1307,), (0.3081,)),
         "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
         "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
         "imagefolder": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))}

DIGITS_VAL_EVERY = 5          # every fifth digit (in the shuffled, class-ordered list) validates
PREPARED_BYTES = 2 * 2**30    # a data set resized once must fit in this; beyond it, per batch
PAD = 4                       # padding of the random crop (CIFAR, MNIST)
VAL_RESIZE = 0.875            # image folders: resize to H / 0.875, centre-crop H x W


class DataError(ArchError):
    """Data that cannot be read, or that does not fit the network or the batch.

    A DataLoader worker's error reaches the main process as one string (torch rebuilds the
    exception from its text): that string's diagnostic is read back, so it prints as one."""

    def __init__(self, code: str, message: str | None = None, *args, **kwargs):
        if message is None:   # torch's `exc_type(text)`: the rendered diagnostic is in the text
            found = _RENDERED.findall(code)
            code, message = found[-1] if found else ("E103", code.strip().split("\n")[-1])
        super().__init__(code, message, *args, **kwargs)


_RENDERED = re.compile(r"error\[(E\d{3})\]: (.*)")


# ----------------------------------------------------------------------------- --data

@dataclass(frozen=True)
class DataSpec:
    """What ``--data`` names: a kind (``KINDS``) and, except for the digits, a folder."""

    kind: str = "digits"
    path: Path | None = None

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"

    @property
    def name(self) -> str:
        """How messages name it: ``the digits``, ``CIFAR-10 in data/cifar``, ``the image folder data/pets``."""
        if self.path is None:
            return NAMES[self.kind]
        return f"{NAMES[self.kind]} {self.path}" if self.kind == "imagefolder" else f"{NAMES[self.kind]} in {self.path}"


def parse_data(text) -> DataSpec:
    """``--data`` as a :class:`DataSpec` (E100: not one of the kinds; E101: no such folder).
    A DataSpec is returned as is; None is the digits."""
    if isinstance(text, DataSpec):
        return text
    if text is None:
        return DataSpec()
    text = str(text)
    kind, sep, path = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise DataError("E100", f"unknown data set `{text}`", notes=[f"`{k}`: {d}" for k, d in KINDS.items()],
                        hint=did_you_mean(kind, KINDS) or "use digits, cifar10:PATH, cifar100:PATH, "
                        "mnist:PATH or imagefolder:PATH")
    if kind == "digits":
        if sep:
            raise DataError("E100", f"the digits take no folder, got `{text}`",
                            hint="the digits are bundled with scikit-learn: write `--data digits`")
        return DataSpec()
    if not path.strip():
        raise DataError("E100", f"`{kind}` needs a folder: write `{kind}:PATH`",
                        hint=f"`{kind}:PATH` names {_expected(kind)}")
    folder = Path(path.strip()).expanduser()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DataError("E101", f"data folder {folder} {what}", hint=f"`{kind}:PATH` names {_expected(kind)}")
    return DataSpec(kind, folder)


def _expected(kind: str) -> str:
    """The layout a kind expects under its PATH, for messages."""
    if kind == "imagefolder":
        return "a folder with train/ and val/ subfolders, each with one folder of images per class"
    cls = _torchvision_class(kind)
    if kind == "mnist":
        return "the folder holding torchvision's `MNIST/raw/` (train-images-idx3-ubyte and the other idx files)"
    files = ", ".join(f for f, _ in cls.train_list + cls.test_list)
    return f"the folder holding torchvision's `{cls.base_folder}` folder ({files}, {cls.meta['filename']})"


def _torchvision_class(kind: str):
    from torchvision import datasets
    return {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100, "mnist": datasets.MNIST}[kind]


# ----------------------------------------------------------------------------- opening the data

@dataclass
class _Source:
    """An opened data set: tensors (digits, MNIST, CIFAR) or two ImageFolders."""

    spec: DataSpec
    classes: list
    mean: tuple
    std: tuple
    train: tuple = ()          # (images N x c x h x w, labels N): uint8 0..255 or float 0..1
    val: tuple = ()
    folders: tuple = ()        # (train ImageFolder, val ImageFolder) for image folders


_OPENED: dict = {}   # the last data set opened (data_classes, then make_loaders, read it once)


def _open(data: DataSpec) -> _Source:
    if data in _OPENED:
        return _OPENED[data]
    opener = {"digits": _open_digits, "imagefolder": _open_folder}.get(data.kind, _open_torchvision)
    source = opener(data)
    _OPENED.clear()
    _OPENED[data] = source
    return source


def _open_digits(data: DataSpec) -> _Source:
    pixels, target = load_digits()
    images = torch.from_numpy(pixels).float().div_(16.0).view(-1, 1, 8, 8)   # 1797 x 1 x 8 x 8, 0..1
    labels = torch.from_numpy(target).long()
    val = digits_split(labels)
    train_mask = torch.ones(len(labels), dtype=torch.bool)
    train_mask[val] = False
    train = train_mask.nonzero().flatten()
    x = images[train]
    mean, std = (x.mean().item(),), (x.std().item(),)
    return _Source(data, list(range(10)), mean, std, (x, labels[train]), (images[val], labels[val]))


def load_digits():
    """The digits' pixels (1797 x 64, 0..16) and labels, from scikit-learn's bundled file,
    read as ``sklearn.datasets.load_digits`` reads it but without importing scikit-learn (two
    seconds); through ``load_digits`` itself where that file is not found."""
    import importlib.util
    import numpy as np
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits
    digits = sklearn_digits()
    return digits.data, digits.target


def digits_split(labels: torch.Tensor) -> torch.Tensor:
    """The validation indices of the digits (sorted): shuffled by a fixed hash (this module's
    own, so no library's generator can move it), stably ordered by class, every fifth one
    (360 of 1,797; the other 1,437 train)."""
    order = torch.argsort(sample_keys(0, 0, torch.arange(len(labels))), stable=True)
    by_class = order[torch.sort(labels[order], stable=True).indices]
    return torch.sort(by_class[::DIGITS_VAL_EVERY]).values


def _open_torchvision(data: DataSpec) -> _Source:
    from torchvision.datasets.utils import check_integrity
    cls, root = _torchvision_class(data.kind), data.path
    if data.kind == "mnist":
        raw = root / cls.__name__ / "raw"
        needed = [raw / Path(url).stem for url, _ in cls.resources]   # the idx files, unpacked
        checks = [(p, None) for p in needed]
    else:
        base = root / cls.base_folder
        checks = [(base / f, md5) for f, md5 in cls.train_list + cls.test_list + [[cls.meta["filename"],
                                                                                     cls.meta["md5"]]]]
    for path, md5 in checks:
        if not check_integrity(str(path), md5):
            what = "is corrupt (its checksum is not the published one)" if path.is_file() else "is missing"
            packed = path.with_name(path.name + ".gz")
            hint = f"unpack {packed.name} beside it (gunzip keeps the name without .gz)" if packed.is_file() \
                else "unpack the data set's official archive there (archdsl never downloads)"
            raise DataError("E103", f"{NAMES[data.kind]} in {root}: {path.relative_to(root)} {what}",
                            notes=[f"`{data.kind}:PATH` names {_expected(data.kind)}"], hint=hint)
    try:
        train, val = cls(str(root), train=True, download=False), cls(str(root), train=False, download=False)
    except Exception as e:   # a file that passes the check but does not unpickle or parse
        raise DataError("E103", f"{NAMES[data.kind]} in {root} cannot be read: {type(e).__name__}: {e}",
                        notes=[f"`{data.kind}:PATH` names {_expected(data.kind)}"]) from None
    mean, std = STATS[data.kind]
    classes = list(train.classes)
    return _Source(data, classes, mean, std, _tensors(train, len(classes), root), _tensors(val, len(classes), root))


def _tensors(ds, n_classes: int, root) -> tuple:
    """A torchvision data set's images as a uint8 N x c x h x w tensor and its labels."""
    x = torch.as_tensor(ds.data)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)     # MNIST N x h x w; CIFAR N x h x w x 3
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    if len(y) != len(x) or (len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes)):
        raise DataError("E103", f"the data set in {root} has labels that do not fit its {n_classes} classes "
                        f"or its {len(x)} images")
    return x.contiguous(), y


def _open_folder(data: DataSpec) -> _Source:
    from torchvision.datasets import ImageFolder
    for split in ("train", "val"):
        if not (data.path / split).is_dir():
            raise DataError("E103", f"the image folder {data.path} has no {split}/ subfolder",
                            hint=f"`imagefolder:PATH` names {_expected('imagefolder')}")
    folders = []
    for split in ("train", "val"):
        sub = data.path / split
        try:
            folders.append(ImageFolder(str(sub)))
        except FileNotFoundError as e:
            what = "no class folders" if "class folder" in str(e) else \
                f"no images in its class folders ({_first_line(e)})"
            raise DataError("E102", f"{sub} has {what}", hint="put each class's images in a folder of its "
                            f"own: {sub}/CLASS/IMAGE.png (.jpg, .png, .bmp, .webp ...)") from None
    train, val = folders
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        notes = ([f"only in train/: {', '.join(only_train)}"] if only_train else []) + \
            ([f"only in val/: {', '.join(only_val)}"] if only_val else [])
        raise DataError("E102", f"the image folder {data.path}: train/ and val/ have different classes",
                        notes=notes, hint="give val/ a folder for every class of train/, and no other")
    mean, std = STATS["imagefolder"]
    return _Source(data, list(train.classes), mean, std, folders=(train, val))


def _first_line(e: Exception) -> str:
    return str(e).strip().split("\n")[0]


def data_classes(data) -> int:
    """How many classes ``data`` (a ``--data`` string or a DataSpec) has; opens it (diagnostics
    E100-E103 for what cannot be read)."""
    return len(_open(parse_data(data)).classes)


# ----------------------------------------------------------------------------- fitting a network

def input_chw(shape, data=None) -> tuple[int, int, int]:
    """A network input shape as ``(C, H, W)`` (E104 when it is not an image)."""
    shape = tuple(shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        on = f" to train on {parse_data(data).name}" if data is not None else ""
        raise DataError("E104", f"the network's input is {list(shape)}: it needs an image input [C, H, W]{on}",
                        hint="declare the input as `input image: [C, H, W]`, or set it with --input")
    return shape


def match_classes(graph_params: dict, output_shape, n_classes: int, given, data=None) -> int | None:
    """Whether the network's output fits ``n_classes`` classes of data.

    ``graph_params`` are the network's resolved parameters, ``output_shape`` its output's
    shape (batch excluded), ``given`` the names of the parameters the user set (or a bool:
    whether ``classes`` was set). Returns None when the output fits; ``n_classes`` when the
    network has a ``classes`` parameter the user did not set and must be checked again with
    ``classes=n_classes`` (the caller says so); raises E104 for any other mismatch, naming both
    (and ``data``, a ``--data`` string or DataSpec, when given).
    """
    given = bool(given) if isinstance(given, bool) else "classes" in set(given or ())
    shape = list(output_shape)
    has = "classes" in graph_params
    if len(shape) == 1 and shape[0] == n_classes:
        return None
    if has and not given and graph_params["classes"] != n_classes:
        return n_classes
    source = [f"the data: {parse_data(data).name}, {n_classes} classes"] if data is not None else []
    if len(shape) != 1:
        raise DataError("E104", f"the network's output is {shape}, the data has {n_classes} classes",
                        notes=["training and evaluation need one score per class: an output of shape "
                               f"[{n_classes}]", *source],
                        hint="end the network with a global pool, flatten and `linear(classes)`")
    why = f" (with classes={graph_params['classes']})" if has else ""
    hint = (f"set `--set classes={n_classes}`, or leave `classes` unset: it then follows the data" if has and given
            else f"its output does not follow `classes`: make the last layer `linear(classes)`" if has
            else f"the network has no `classes` parameter: give it one (`network name(classes = {n_classes})`) "
            "and end with `linear(classes)`")
    raise DataError("E104", f"the network's output has {shape[0]} classes{why}, the data has {n_classes}",
                    notes=[f"the network's output: {shape}", *source], hint=hint)


# ----------------------------------------------------------------------------- sampling

class Batches(Sampler):
    """The batches of one split, as a sampler of index batches (see the module docstring).

    Training (``shuffle=True``): epoch ``e`` is a DistributedSampler's permutation (seed
    ``seed + e``, ``drop_last``, this process's share when distributed), cut into batches of
    ``batch`` (the per-process batch), the incomplete last one dropped. Validation: the
    images in order, process ``rank`` taking every ``world``-th one (no padding, no image
    twice: sum the processes' counts). :meth:`set_epoch` picks the epoch and how many of
    its batches to skip (a run resumed mid-epoch). Each batch is ``(epoch, indices)``;
    ``per_item`` yields lists of ``(epoch, index)`` instead (an image folder's items)."""

    def __init__(self, n: int, batch: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1,
                 per_item: bool = False):
        self.n, self.batch, self.shuffle, self.seed = n, batch, shuffle, seed
        self.rank, self.world, self.per_item = rank, world, per_item
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def indices(self) -> list[int]:
        """This process's images of the current epoch, in order."""
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world))
        inner = DistributedSampler(range(self.n), num_replicas=self.world, rank=self.rank, shuffle=True,
                                   seed=self.seed, drop_last=True)
        inner.set_epoch(self.epoch)
        return list(inner)

    @property
    def per_epoch(self) -> int:
        """Batches in a whole epoch."""
        share = self.n // self.world if self.shuffle else len(range(self.rank, self.n, self.world))
        return share // self.batch if self.shuffle else math.ceil(share / self.batch)

    def __len__(self) -> int:
        return max(0, self.per_epoch - self.skip)

    def __iter__(self):
        idx = self.indices()
        for k in range(self.skip, self.per_epoch):
            part = idx[k * self.batch:(k + 1) * self.batch]
            yield [(self.epoch, i) for i in part] if self.per_item else (self.epoch, torch.tensor(part))


_M = 0xFFFFFFFF


def _mix(x):
    """A 32-bit integer hash (ints or int64 tensors holding values below 2**32)."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M
    return (x >> 16) ^ x


def sample_keys(seed: int, epoch: int, idx):
    """The random key of each image (an int or an int64 tensor of indices) in an epoch."""
    return _mix((idx & _M) ^ _mix(_mix(seed & _M) ^ (epoch & _M)))


def crop_flip(x: torch.Tensor, keys: torch.Tensor, pad: int = PAD, flip: bool = True) -> torch.Tensor:
    """A random crop of each image (B x C x H x W) padded with ``pad`` zeros, and a horizontal
    flip of about half of them, all drawn from ``keys`` (one per image)."""
    b, _, h, w = x.shape
    span = 2 * pad + 1
    dy, dx = keys % span, (keys // span) % span
    rows = dy[:, None] + torch.arange(h)
    cols = dx[:, None] + torch.arange(w)
    if flip:
        mirrored = ((keys // (span * span)) % 2).bool()
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    padded = F.pad(x, (pad, pad, pad, pad))
    out = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]   # B x H x W x C
    return out.permute(0, 3, 1, 2).contiguous()


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float images B x C x h x w resized to ``size`` (bilinear, antialiased when shrinking)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


# ----------------------------------------------------------------------------- the splits

class TensorSplit(Dataset):
    """One split held as a tensor, indexed a batch at a time: ``split[(epoch, indices)]`` is
    ``(images, labels)``, the images resized, augmented, replicated to ``channels`` and
    normalised. Images are resized once here when that fits in ``PREPARED_BYTES``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, size, channels: int, mean, std, *,
                 augment: str | None = None, seed: int = 0):
        self.size, self.channels, self.augment, self.seed = tuple(size), channels, augment, seed
        n, c = images.shape[:2]
        if tuple(images.shape[-2:]) != self.size and n * c * self.size[0] * self.size[1] * images.element_size() \
                <= PREPARED_BYTES:
            images = _resize_all(images, self.size)
        self.images, self.labels = images, labels
        reps = channels // c
        self.mean = torch.tensor(mean, dtype=torch.float32).repeat(reps).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).repeat(reps).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item):
        epoch, idx = item
        x = self.images[idx]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x
        x = resize(x, self.size)
        if self.augment is not None:
            x = crop_flip(x, sample_keys(self.seed, epoch, idx), flip=self.augment == "crop_flip")
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return ((x - self.mean) / self.std).contiguous(), self.labels[idx]


def _resize_all(images: torch.Tensor, size, chunk: int = 4096) -> torch.Tensor:
    """Every image resized once, in chunks; uint8 images stay uint8 (rounded, as an image
    library resizing 8-bit images does)."""
    out = []
    for part in images.split(chunk):
        y = resize(part.float() / 255.0 if part.dtype == torch.uint8 else part, size)
        out.append(y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8) if images.dtype == torch.uint8 else y)
    return torch.cat(out)


class FolderSplit(Dataset):
    """An ImageFolder split, one image per item ``(epoch, index)``: its transform runs with
    torch's generator seeded by the image's key, so the crop of an image does not depend on
    the worker or process that loads it (the caller's generator is left as it was)."""

    def __init__(self, folder, transform, seed: int = 0):
        self.folder, self.transform, self.seed = folder, transform, seed

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, item):
        epoch, i = item
        path, target = self.folder.samples[i]
        try:
            image = self.folder.loader(path)
        except OSError as e:
            raise DataError("E103", f"cannot read the image {path}: {_first_line(e)}") from None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(sample_keys(self.seed, epoch, i)))
            return self.transform(image), target


def _folder_transforms(size, mean, std, augment: bool):
    from torchvision import transforms as T
    finish = [T.ToTensor(), T.Normalize(mean, std)]
    val = T.Compose([T.Resize(round(max(size) / VAL_RESIZE)), T.CenterCrop(size), *finish])
    train = T.Compose([T.RandomResizedCrop(size), T.RandomHorizontalFlip(), *finish]) if augment else val
    return train, val


# ----------------------------------------------------------------------------- the loaders

@dataclass
class Loaders:
    """What :func:`make_loaders` builds: the two DataLoaders, their batch samplers (call
    ``set_epoch`` before each epoch), the class count and the normalisation used."""

    train: DataLoader
    val: DataLoader
    classes: int
    mean: tuple
    std: tuple
    data: DataSpec
    train_batches: Batches = field(repr=False, default=None)
    val_batches: Batches = field(repr=False, default=None)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The epoch the training loader runs next, skipping its first ``skip`` batches."""
        self.train_batches.set_epoch(epoch, skip)

    @property
    def steps_per_epoch(self) -> int:
        return self.train_batches.per_epoch


def resolve_device(name=None) -> torch.device:
    """``--device``: None or ``auto`` is CUDA when there is one, else the CPU (ValueError for
    a device this machine lacks: a usage error)."""
    if name is None or str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(str(name))
    except RuntimeError:
        raise ValueError(f"unknown device {str(name)!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def make_loaders(data="digits", input_shape=(1, 32, 32), batch: int = 64, workers: int = 0, seed: int = 0,
                 device=None, augment: bool = True, distributed=None) -> Loaders:
    """Training and validation DataLoaders over ``data`` for a network of input ``(C, H, W)``.

    ``batch`` is the global batch; with ``distributed=(rank, world_size)`` each process loads
    ``batch / world_size`` of it (see the module docstring for the order). ``device`` only
    decides pinned memory (on CUDA). Diagnostics: E100-E103 (the data), E104 (channels, or a
    training split smaller than one batch)."""
    data = parse_data(data)
    c, h, w = input_chw(input_shape, data)
    rank, world = distributed if distributed is not None else (0, 1)
    if not (isinstance(batch, int) and batch > 0 and workers >= 0 and world >= 1 and 0 <= rank < world):
        raise ValueError(f"bad loader options: batch {batch}, workers {workers}, distributed {distributed}")
    if batch % world:
        raise ValueError(f"the batch ({batch}) must be a multiple of the number of processes ({world})")
    per_process = batch // world
    source = _open(data)
    native = source.train[0].shape[1] if source.train else 3
    if c != native and not (native == 1 and c >= 1):
        raise DataError("E104", f"{data.name} has {native}-channel images, the network's input has {c} channels "
                        f"({[c, h, w]})", hint=f"declare the input as [{native}, {h}, {w}] (or set it with "
                        f"`--input image=[{native}, {h}, {w}]`)")
    pin = resolve_device(device).type == "cuda"
    common = dict(num_workers=workers, pin_memory=pin, persistent_workers=workers > 0,
                  generator=torch.Generator().manual_seed(seed))   # never torch's global generator
    per_item = bool(source.folders)
    if per_item:
        train_t, val_t = _folder_transforms((h, w), source.mean, source.std, augment)
        train_set, val_set = FolderSplit(source.folders[0], train_t, seed), FolderSplit(source.folders[1], val_t, seed)
    else:
        kind = None if not augment or data.kind == "digits" else "crop" if data.kind == "mnist" else "crop_flip"
        train_set = TensorSplit(*source.train, (h, w), c, source.mean, source.std, augment=kind, seed=seed)
        val_set = TensorSplit(*source.val, (h, w), c, source.mean, source.std, seed=seed)
    n = len(train_set)
    if n // world < per_process:
        raise DataError("E104", f"{data.name} has {n} training images, fewer than one batch of {per_process}"
                        + (f" per process ({world} processes)" if world > 1 else ""),
                        hint="use a smaller --batch")
    train_b = Batches(n, per_process, shuffle=True, seed=seed, rank=rank, world=world, per_item=per_item)
    val_b = Batches(len(val_set), per_process, shuffle=False, rank=rank, world=world, per_item=per_item)
    if per_item:
        train = DataLoader(train_set, batch_sampler=train_b, **common)
        val = DataLoader(val_set, batch_sampler=val_b, **common)
    else:
        train = DataLoader(train_set, sampler=train_b, batch_size=None, **common)
        val = DataLoader(val_set, sampler=val_b, batch_size=None, **common)
    return Loaders(train, val, len(source.classes), tuple(source.mean), tuple(source.std), data, train_b, val_b)


# ----------------------------------------------------------------------------- measuring

def scores(out):
    """The class scores among a model's outputs: a tensor, or the one value of a dict or tuple."""
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        if len(out) != 1:
            raise ValueError(f"the model returned {len(out)} outputs, not one tensor of class scores")
        out = out[0]
    return out


def validate(model, loader, device=None, *, reduce: bool = True) -> dict:
    """``val_loss`` (mean cross-entropy) and ``val_acc`` (a fraction) of ``model`` over a
    loader, and the ``images`` counted; the model is left in eval mode. Under an initialised
    ``torch.distributed`` (and ``reduce``) the processes' sums are added up first."""
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    device = torch.device(device)
    model.eval()
    loss = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            s = scores(model(x)).float()
            loss += F.cross_entropy(s, y, reduction="sum").double()
            correct += (s.argmax(1) == y).sum()
            count += len(y)
    if reduce and torch.distributed.is_available() and torch.distributed.is_initialized():
        sums = torch.stack([loss, correct, count])
        torch.distributed.all_reduce(sums)
        loss, correct, count = sums
    n = int(count.item())
    return {"val_acc": correct.item() / max(n, 1), "val_loss": loss.item() / max(n, 1), "images": n}
