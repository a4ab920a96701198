"""Data for training and `archdsl eval` (archdsl.data, archdsl.evaluation): the digits, tiny
synthetic CIFAR-10 / MNIST folders in torchvision's on-disk formats, a generated PNG image
folder, the sample order one process and several share, and every bad input as a diagnostic."""
from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import struct
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import archdsl
from archdsl import data as D
from archdsl.errors import ArchError

TINY = """network tiny(classes = 3, size = 8) {
    input image: [1, size, size]
    c: conv(4, 3) -> relu -> flatten
    output: linear(classes)
}
"""


def raises(code: str, fn, *args, **kwargs) -> ArchError:
    with pytest.raises(ArchError) as info:
        fn(*args, **kwargs)
    assert info.value.code == code, info.value.render()
    return info.value


def batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def sklearn_digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    return torch.from_numpy(d.images).float() / 16.0, torch.from_numpy(d.target).long()


# ----------------------------------------------------------------------------- the digits

def test_digits_split_is_fixed_stratified_and_the_bundled_data():
    images, labels = sklearn_digits()
    pixels, target = D.load_digits()
    assert np.array_equal(pixels.reshape(-1, 8, 8) / 16.0, images.numpy()) and np.array_equal(target, labels)
    val = D.digits_split(labels)
    assert len(val) == 360 and len(set(val.tolist())) == 360 and torch.equal(val, D.digits_split(labels))
    assert val[:8].tolist() == [0, 7, 13, 17, 25, 42, 46, 48]     # pinned: a fixed split, forever
    assert torch.bincount(labels[val]).tolist() == [36, 36, 36, 36, 37, 36, 36, 36, 35, 36]   # a fifth of each
    loaders = D.make_loaders("digits", (1, 8, 8), batch=64, seed=0)
    assert (loaders.classes, len(loaders.train_batches.indices()), loaders.val_batches.n) == (10, 1437, 360)
    assert loaders.steps_per_epoch == 1437 // 64 == len(loaders.train)
    train = torch.ones(1797, dtype=torch.bool)
    train[val] = False
    mean, std = images[train].mean().item(), images[train].std().item()
    assert loaders.mean == pytest.approx((mean,)) and loaders.std == pytest.approx((std,))
    x = torch.cat([b[0] for b in batches(loaders.val)])
    y = torch.cat([b[1] for b in batches(loaders.val)])
    assert x.shape == (360, 1, 8, 8) and torch.equal(y, labels[val])
    torch.testing.assert_close(x, (images[val].unsqueeze(1) - mean) / std)


def test_digits_resized_once_and_replicated_to_the_channels():
    images, labels = sklearn_digits()
    val = D.digits_split(labels)
    loaders = D.make_loaders("digits", (3, 20, 12), batch=100)
    x, y = next(iter(loaders.val))
    assert x.shape == (100, 3, 20, 12) and x.is_contiguous()
    expected = F.interpolate(images[val[:100]].unsqueeze(1), size=(20, 12), mode="bilinear", align_corners=False,
                             antialias=True)
    expected = (expected - loaders.mean[0]) / loaders.std[0]
    for c in range(3):
        torch.testing.assert_close(x[:, c:c + 1], expected)
    assert loaders.val.dataset.images.shape == (360, 1, 20, 12)   # resized once, grey: one channel kept
    small = D.make_loaders("digits", (1, 4, 4), batch=8)          # shrinking is antialiased
    torch.testing.assert_close(small.val.dataset.images[:2], F.interpolate(
        images[val[:2]].unsqueeze(1), size=(4, 4), mode="bilinear", antialias=True))


def test_digits_order_is_deterministic_per_seed_and_epoch_and_untouched_by_augment():
    a, b = D.make_loaders("digits", (1, 8, 8), batch=32, seed=3), D.make_loaders("digits", (1, 8, 8), batch=32, seed=3)
    first = batches(a.train)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(first, batches(b.train)))
    a.set_epoch(1)
    assert not torch.equal(batches(a.train)[0][1], first[0][1])
    other = D.make_loaders("digits", (1, 8, 8), batch=32, seed=4)
    assert not torch.equal(batches(other.train)[0][1], first[0][1])
    state = torch.get_rng_state()
    plain = D.make_loaders("digits", (1, 8, 8), batch=32, seed=3, augment=False)
    assert torch.equal(batches(plain.train)[0][0], first[0][0])   # the digits are never augmented
    assert torch.equal(state, torch.get_rng_state())               # no loader draws from the global generator
    a.set_epoch(0, skip=5)                                         # resumed mid-epoch
    rest = batches(a.train)
    assert len(rest) == len(first) - 5 and torch.equal(rest[0][1], first[5][1])


def test_two_processes_see_what_one_process_sees_at_every_step():
    one = D.make_loaders("digits", (1, 8, 8), batch=64, seed=7)
    ranks = [D.make_loaders("digits", (1, 8, 8), batch=64, seed=7, distributed=(r, 2)) for r in (0, 1)]
    for epoch in (0, 2):
        one.set_epoch(epoch)
        for r in ranks:
            r.set_epoch(epoch)
        whole = [y for _, y in one.train]
        parts = [[y for _, y in r.train] for r in ranks]
        assert len(whole) == len(parts[0]) == len(parts[1]) == 1437 // 64
        for k, y in enumerate(whole):
            assert len(parts[0][k]) == 32
            together = one.train_batches.indices()[k * 64:(k + 1) * 64]
            mine = ranks[0].train_batches.indices()[k * 32:(k + 1) * 32] + \
                ranks[1].train_batches.indices()[k * 32:(k + 1) * 32]
            assert sorted(together) == sorted(mine)
            assert sorted(y.tolist()) == sorted(torch.cat([parts[0][k], parts[1][k]]).tolist())
    seen = sorted(i for r in ranks for i in r.val_batches.indices())   # validation: each image once
    assert seen == list(range(360))
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        D.make_loaders("digits", (1, 8, 8), batch=63, distributed=(0, 2))


def test_workers_give_the_same_batches():
    plain = D.make_loaders("digits", (2, 8, 8), batch=128, seed=1)
    pooled = D.make_loaders("digits", (2, 8, 8), batch=128, seed=1, workers=2)
    assert not pooled.train.pin_memory   # pinned memory only for CUDA
    for (x, y), (u, v) in zip(batches(plain.train), batches(pooled.train)):
        assert torch.equal(x, u) and torch.equal(y, v)


# ----------------------------------------------------------------------------- CIFAR-10 on disk

def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in torchvision's format (pickled batches of 4 images; 3 for the test
    batch), the class's checksum table patched to the files written here."""
    from torchvision.datasets import CIFAR10
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    rng = np.random.default_rng(0)
    files = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        n = 3 if name == "test_batch" else 4
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": [int(v) for v in rng.integers(0, 10, n)]}
        files[name] = entry
        (base / name).write_bytes(pickle.dumps(entry))
    (base / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{k}", _md5(base / f"data_batch_{k}")]
                                                for k in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(base / "test_batch")]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(base / "batches.meta")})
    D._OPENED.clear()
    yield tmp_path, files
    D._OPENED.clear()


def _hwc_to_chw(rows) -> torch.Tensor:
    return torch.from_numpy(rows).view(-1, 3, 32, 32).float() / 255.0


def test_cifar10_from_torchvision_files(cifar):
    root, files = cifar
    data = f"cifar10:{root}"
    assert D.data_classes(data) == 10
    loaders = D.make_loaders(data, (3, 32, 32), batch=4, seed=0)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in D.STATS["cifar10"])
    x, y = next(iter(loaders.val))
    torch.testing.assert_close(x, (_hwc_to_chw(files["test_batch"]["data"]) - mean) / std)
    assert y.tolist() == files["test_batch"]["labels"]
    # training: every image a crop of the zero-padded original (4 pixels), maybe mirrored
    originals = torch.cat([_hwc_to_chw(files[f"data_batch_{k}"]["data"]) for k in range(1, 6)])
    padded = F.pad(originals, (4, 4, 4, 4))
    order = loaders.train_batches.indices()
    seen_flip = set()
    for k, (x, _) in enumerate(loaders.train):
        for j, img in enumerate(x * std + mean):
            hits = _crops(img, padded[order[k * 4 + j]])
            assert hits, f"image {order[k * 4 + j]} is not a padded crop of its original"
            seen_flip.update(f for _, _, f in hits)
    assert seen_flip == {False, True}
    again = D.make_loaders(data, (3, 32, 32), batch=2, seed=0)    # an image's crop follows it, not the batch
    first = torch.cat([x for x, _ in again.train])
    by_index = dict(zip(again.train_batches.indices(), first))
    for k, (x, _) in enumerate(D.make_loaders(data, (3, 32, 32), batch=4, seed=0).train):
        for j, img in enumerate(x):
            torch.testing.assert_close(img, by_index[order[k * 4 + j]])


def test_cifar10_bad_folders_are_diagnostics(cifar, tmp_path):
    root, _ = cifar
    e = raises("E104", D.make_loaders, f"cifar10:{root}", (1, 32, 32), batch=4)
    assert e.message == f"CIFAR-10 in {root} has 3-channel images, the network's input has 1 channels ([1, 32, 32])"
    e = raises("E104", D.make_loaders, f"cifar10:{root}", (3, 32, 32), batch=64)
    assert e.message == f"CIFAR-10 in {root} has 20 training images, fewer than one batch of 64"
    D._OPENED.clear()
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:-1] + b"\0")
    e = raises("E103", D.data_classes, f"cifar10:{root}")
    assert e.message == f"CIFAR-10 in {root}: cifar-10-batches-py/data_batch_3 is corrupt (its checksum is not the " \
        "published one)"
    assert "torchvision's `cifar-10-batches-py` folder" in e.notes[0] and "archdsl never downloads" in e.hint
    empty = tmp_path / "empty"
    empty.mkdir()
    e = raises("E103", D.data_classes, f"cifar10:{empty}")
    assert e.message == f"CIFAR-10 in {empty}: cifar-10-batches-py/data_batch_1 is missing"
    e = raises("E103", D.data_classes, f"cifar100:{empty}")
    assert e.message == f"CIFAR-100 in {empty}: cifar-100-python/train is missing"


# ----------------------------------------------------------------------------- MNIST on disk

def _idx(path, array: np.ndarray) -> None:
    """An idx file (big-endian magic: 0, 0, type 0x08 = uint8, rank; then each dimension)."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def mnist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 6), ("t10k", 5)):
        arrays[split] = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
        _idx(raw / f"{split}-images-idx3-ubyte", arrays[split][0])
        _idx(raw / f"{split}-labels-idx1-ubyte", arrays[split][1])
    D._OPENED.clear()
    yield tmp_path, arrays
    D._OPENED.clear()


def test_mnist_from_idx_files_resized_and_replicated(mnist):
    root, arrays = mnist
    assert D.data_classes(f"mnist:{root}") == 10
    loaders = D.make_loaders(f"mnist:{root}", (3, 32, 32), batch=2)
    x = torch.cat([b[0] for b in loaders.val])
    y = torch.cat([b[1] for b in loaders.val])
    images = torch.from_numpy(arrays["t10k"][0]).float().unsqueeze(1) / 255.0
    resized = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    resized = (resized * 255).round().clamp(0, 255) / 255.0      # prepared once, as 8-bit images
    expected = (resized - 0.1307) / 0.3081
    assert x.shape == (5, 3, 32, 32) and y.tolist() == arrays["t10k"][1].tolist()
    for c in range(3):
        torch.testing.assert_close(x[:, c:c + 1], expected)
    loaders = D.make_loaders(f"mnist:{root}", (1, 28, 28), batch=2)
    train = torch.cat([b[0] for b in loaders.train]) * 0.3081 + 0.1307
    padded = F.pad(torch.from_numpy(arrays["train"][0]).float().unsqueeze(1) / 255.0, (4, 4, 4, 4))
    for img, i in zip(train, loaders.train_batches.indices()):   # cropped with padding 4, never mirrored
        assert _crops(img, padded[i]) and not any(f for _, _, f in _crops(img, padded[i]))


def _crops(img, padded):
    """The (dy, dx, mirrored) crops of a padded image that equal ``img``."""
    h, w = img.shape[-2:]
    return [(dy, dx, f) for dy in range(padded.shape[-2] - h + 1) for dx in range(padded.shape[-1] - w + 1)
            for f in (False, True)
            if torch.allclose(padded[:, dy:dy + h, dx:dx + w].flip(2) if f else padded[:, dy:dy + h, dx:dx + w],
                              img, atol=1e-5)]


def test_mnist_bad_files_are_diagnostics(mnist):
    root, _ = mnist
    raw = root / "MNIST" / "raw"
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.rename(raw / "t10k-labels-idx1-ubyte.gz")   # (not really gzipped: only its name is looked at)
    e = raises("E103", D.data_classes, f"mnist:{root}")
    assert e.message == f"MNIST in {root}: MNIST/raw/t10k-labels-idx1-ubyte is missing"
    assert "`MNIST/raw/`" in e.notes[0] and e.hint.startswith("unpack t10k-labels-idx1-ubyte.gz beside it")
    (raw / "t10k-labels-idx1-ubyte.gz").unlink()
    assert "archdsl never downloads" in raises("E103", D.data_classes, f"mnist:{root}").hint
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x0d\x07")   # a float tensor of rank 7
    e = raises("E103", D.data_classes, f"mnist:{root}")
    assert e.message.startswith(f"MNIST in {root} cannot be read: ")


# ----------------------------------------------------------------------------- an image folder

@pytest.fixture
def folder(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(2)
    for split, n in (("train", 4), ("val", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    D._OPENED.clear()
    yield tmp_path
    D._OPENED.clear()


def test_image_folder_loaders(folder):
    from PIL import Image
    from torchvision import transforms as T
    assert D.data_classes(f"imagefolder:{folder}") == 2
    loaders = D.make_loaders(f"imagefolder:{folder}", (3, 16, 16), batch=4, seed=5)
    x, y = next(iter(loaders.val))
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [0, 0, 1, 1]
    mean, std = D.STATS["imagefolder"]
    want = T.Compose([T.Resize(18), T.CenterCrop(16), T.ToTensor(), T.Normalize(mean, std)])(
        Image.open(folder / "val" / "cat" / "0.png").convert("RGB"))
    torch.testing.assert_close(x[0], want)
    first = batches(loaders.train)
    assert len(first) == 2 and first[0][0].shape == (4, 3, 16, 16)
    again = D.make_loaders(f"imagefolder:{folder}", (3, 16, 16), batch=4, seed=5, workers=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, batches(again.train)))   # crops follow the seed


@pytest.mark.parametrize("workers", [0, 1])
def test_an_unreadable_image_is_a_diagnostic_even_from_a_worker(folder, workers):
    (folder / "train" / "dog" / "1.png").write_bytes(b"not a png")
    loaders = D.make_loaders(f"imagefolder:{folder}", (3, 8, 8), batch=8, workers=workers)
    e = raises("E103", batches, loaders.train)
    assert e.message.startswith(f"cannot read the image {folder / 'train' / 'dog' / '1.png'}: cannot identify")


def test_image_folder_mistakes_are_diagnostics(folder, tmp_path_factory):
    e = raises("E104", D.make_loaders, f"imagefolder:{folder}", (1, 16, 16), batch=2)
    assert e.message == f"the image folder {folder} has 3-channel images, the network's input has 1 channels " \
        "([1, 16, 16])"
    (folder / "val" / "bird").mkdir()
    (folder / "val" / "dog" / "0.png").rename(folder / "val" / "bird" / "0.png")
    D._OPENED.clear()
    e = raises("E102", D.data_classes, f"imagefolder:{folder}")
    assert e.message == f"the image folder {folder}: train/ and val/ have different classes"
    assert e.notes == ["only in val/: bird"]
    bare = tmp_path_factory.mktemp("bare")
    (bare / "train").mkdir()
    e = raises("E103", D.data_classes, f"imagefolder:{bare}")
    assert e.message == f"the image folder {bare} has no val/ subfolder" and "train/ and val/ subfolders" in e.hint
    (bare / "val").mkdir()
    e = raises("E102", D.data_classes, f"imagefolder:{bare}")
    assert e.message == f"{bare / 'train'} has no class folders" and "CLASS/IMAGE.png" in e.hint
    (bare / "train" / "cat").mkdir()
    (bare / "train" / "cat" / "notes.txt").write_text("not an image")
    e = raises("E102", D.data_classes, f"imagefolder:{bare}")
    assert e.message.startswith(f"{bare / 'train'} has no images in its class folders (")


# ----------------------------------------------------------------------------- --data and classes

@pytest.mark.parametrize("text, code, message", [
    ("cifar", "E100", "unknown data set `cifar`"),
    ("digits:/tmp", "E100", "the digits take no folder, got `digits:/tmp`"),
    ("mnist", "E100", "`mnist` needs a folder: write `mnist:PATH`"),
    ("imagefolder:", "E100", "`imagefolder` needs a folder: write `imagefolder:PATH`"),
    ("cifar10:/no/such/folder", "E101", "data folder /no/such/folder does not exist"),
])
def test_bad_data_options(text, code, message):
    e = raises(code, D.parse_data, text)
    assert e.message == message
    if text == "cifar":
        assert e.hint == "did you mean `cifar10`?" and len(e.notes) == len(D.KINDS)
    if code == "E101":
        assert "`cifar-10-batches-py` folder" in e.hint


def test_a_file_is_not_a_data_folder(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"")
    assert raises("E101", D.parse_data, f"mnist:{f}").message == f"data folder {f} is not a folder"
    assert D.parse_data(None) == D.parse_data("digits") == D.DataSpec() and str(D.parse_data(f"mnist:{tmp_path}")) \
        == f"mnist:{tmp_path}"


def test_match_classes():
    assert D.match_classes({"classes": 10}, (10,), 10, given=False) is None
    assert D.match_classes({"classes": 1000}, (1000,), 10, given=set()) == 10    # set it, and say so
    assert D.match_classes({}, (10,), 10, given=False) is None
    e = raises("E104", D.match_classes, {"classes": 1000}, (1000,), 10, {"classes"})
    assert e.message == "the network's output has 1000 classes (with classes=1000), the data has 10"
    assert e.hint == "set `--set classes=10`, or leave `classes` unset: it then follows the data"
    assert e.notes == ["the network's output: [1000]"]
    e = raises("E104", D.match_classes, {"classes": 1000}, (1000,), 10, {"classes"}, "digits")
    assert e.notes == ["the network's output: [1000]", "the data: the digits, 10 classes"]
    e = raises("E104", D.match_classes, {"size": 32}, [1000], 10, False)
    assert e.message == "the network's output has 1000 classes, the data has 10" and "no `classes`" in e.hint
    e = raises("E104", D.match_classes, {"classes": 10}, (10, 4, 4), 10, True)
    assert e.message == "the network's output is [10, 4, 4], the data has 10 classes"
    assert raises("E104", D.input_chw, (64,), "digits").message == \
        "the network's input is [64]: it needs an image input [C, H, W] to train on the digits"


# ----------------------------------------------------------------------------- archdsl eval

def _eval_parser():
    from archdsl.evaluation import add_parser
    parser = argparse.ArgumentParser(prog="archdsl")
    add_parser(parser.add_subparsers(dest="command"))
    return parser


def _run(argv, capsys):
    from archdsl.evaluation import run
    args = _eval_parser().parse_args(["eval", *argv])
    try:
        code = run(args)
    except ArchError as e:
        print(e.render(), file=sys.stderr)
        code = 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_reports_accuracy_of_the_saved_weights(tmp_path, capsys):
    from safetensors.torch import save_file

    from archdsl.evaluation import evaluate
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    model = archdsl.load(str(spec), classes=10, seed=11)
    weights = tmp_path / "w.safetensors"
    save_file(model.state_dict(), str(weights))
    notes = []
    result = evaluate(str(spec), str(weights), note=notes.append)
    assert notes == ["classes = 10: the number of classes of the digits (the network's default is 3; set it with "
                     "--set classes=N)"]
    loaders = D.make_loaders("digits", (1, 8, 8), batch=360)
    x, y = next(iter(loaders.val))
    model.eval()
    with torch.no_grad():
        s = model(x)
    assert result["images"] == 360 and result["classes"] == 10
    assert result["val_acc"] == pytest.approx((s.argmax(1) == y).double().mean().item())
    assert result["val_loss"] == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-5)
    code, out, err = _run([str(spec), "--weights", str(weights), "--format", "json", "--batch", "7"], capsys)
    assert code == 0 and "note: classes = 10" in err
    got = json.loads(out)
    assert got["val_acc"] == pytest.approx(result["val_acc"]) and got["val_loss"] == pytest.approx(result["val_loss"])
    code, out, _ = _run([str(spec), "--weights", str(weights), "--set", "classes=10"], capsys)
    assert code == 0 and f"val_acc   {result['val_acc']:.4f}" in out and "360 validation images" in out


def test_eval_mistakes_are_diagnostics(tmp_path, capsys):
    from safetensors.torch import save_file
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    state = archdsl.load(str(spec), classes=10, seed=0).state_dict()
    code, _, err = _run([str(spec), "--weights", str(tmp_path / "none.safetensors")], capsys)
    assert code == 1 and err.startswith(f"error[E105]: weights file {tmp_path / 'none.safetensors'} does not exist")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00not json")
    code, _, err = _run([str(spec), "--weights", str(junk)], capsys)
    assert code == 1 and err.startswith(f"error[E105]: weights file {junk} is not a readable safetensors file: ")
    odd = tmp_path / "odd.safetensors"
    save_file({**{k: v for k, v in state.items() if not k.endswith("bias")}, "extra.weight": torch.zeros(1)}, str(odd))
    code, _, err = _run([str(spec), "--weights", str(odd), "--set", "classes=10"], capsys)
    assert code == 1 and err.splitlines()[:3] == [f"error[E105]: the weights in {odd} do not fit `tiny`",
                                                  "  = note: missing from the file: `c.bias`, `output.bias`",
                                                  "  = note: in the file but not in the network: `extra.weight`"]
    code, _, err = _run([str(spec), "--weights", str(odd), "--input", "image=[1, 9, 9]"], capsys)
    assert code == 1 and "  = note: `output.weight` is [10, 144] in the file, [10, 196] in the network" in err
    code, _, err = _run([str(spec), "--weights", str(odd), "--set", "classes=4"], capsys)
    assert code == 1 and err.startswith("error[E104]: the network's output has 4 classes (with classes=4), the data "
                                        "has 10")
    code, _, err = _run([str(spec), "--weights", str(odd), "--data", "cifar"], capsys)
    assert code == 1 and err.startswith("error[E100]: unknown data set `cifar`")
    code, _, err = _run([str(spec), "--weights", str(odd), "--batch", "0"], capsys)
    assert code == 2 and err == "archdsl: error: --batch must be at least 1, got 0\n"
    if not torch.cuda.is_available():
        code, _, err = _run([str(spec), "--weights", str(odd), "--device", "cuda"], capsys)
        assert code == 2 and err == "archdsl: error: --device cuda: CUDA is not available on this machine\n"
