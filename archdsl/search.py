"""``archdsl search`` and ``archdsl.search()``: a search of a spec's design space with Optuna.

A composition module. The spec's design space (the domains of its network parameters,
``graph.space``) is loaded once (:class:`~archdsl.frontend.SpaceLoader`); each Optuna trial then
draws one design, define-by-run, one suggestion per dimension in declaration order:

* ``choice([...])`` is ``suggest_categorical`` (a block or op choice by its name);
* ``int_range(low, high, step=s)`` is ``suggest_int(low, high, step=s)`` (``log=true``: ``log=True``);
* ``float_range(low, high, log=...)`` is ``suggest_float(low, high, log=...)``.

A design that fails a ``require`` or the shape check is a FAIL trial, its diagnostic code in the
trial's user attributes (``error``, ``message``), and is not trained; the others train with the
``archdsl train`` machinery for ``--steps`` steps into their run folder ``DIR/trial_NNN`` and report
the objective (the final ``val_acc``, or ``best_val_acc``). A run that stops with a diagnostic
(a loss that is not finite, E108) is a FAIL trial the same way. Every trial counts toward
``--trials``, which is the study's total: a worker starts no trial once the study holds that many,
in any state.

Optuna's storage is the record. By default it is a SQLite file in the run folder,
``sqlite:///DIR/study.db``, which local worker processes share (``--workers K``); any Optuna RDB
URL (``--storage postgresql+psycopg2://USER:PASSWORD@HOST/DB``, with ``pip install psycopg2-binary``)
lets workers on many machines share one study under ``--study NAME`` (default: the spec's stem and
a short hash of its space). Each of K local workers runs torch on its share of the cores (the
cores / K threads). The storage keeps heartbeats (every 10 s): a trial whose worker was
killed is marked FAIL by the next worker that starts a trial, and tried again once.

When the trials are done, the first process measures each trained design's forward latency (batch
1, CPU, float32, 5 warm-up and 20 timed runs as ``archdsl bench``, on one thread so that designs
compare without the noise of thread scheduling; ``--no-latency`` skips it), prints the results table, draws ``DIR/pareto.png`` (accuracy against MACs and against
latency, the Pareto front marked) and ``DIR/edf.png`` (the error EDF of the trained designs), and
writes the best design (ties go to the one with fewer MACs) as a concrete spec, ``DIR/best.arch``: the spec writer's text, every
domain replaced by the value the trial chose, which elaborates to the trial's IR, so its
``state_dict`` has the trial's keys and shapes and the trial's ``weights.safetensors`` load into
it strictly.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ArchError

SAMPLERS = ("tpe", "random", "grid")
OBJECTIVES = ("val_acc", "best_val_acc")
HEARTBEAT_S = 10
LATENCY = {"runs": 20, "warmup": 5, "threads": 1}
_CHECK_KEYS = ("network", "inputs", "limits", "roots", "base", "text")


class SearchError(ArchError):
    """A search that cannot start, or that found nothing to report."""


class _DesignFailed(Exception):
    """A trial's design was invalid or its training stopped with a diagnostic (a FAIL trial)."""


@dataclass
class SearchOptions:
    trials: int = 10
    data: str = "digits"
    steps: int = 100
    batch: int = 64
    lr: float = 0.05
    device: str | None = None
    seed: int = 0
    objective: str = "val_acc"
    sampler: str = "tpe"
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    out: str | None = None
    latency: bool = True
    quiet: bool = False

    def checked(self) -> "SearchOptions":
        for name, least in (("trials", 1), ("steps", 1), ("batch", 1), ("workers", 1), ("seed", 0)):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise SearchError("E125", f"--{name} must be an integer >= {least}, got {v!r}")
        for name, known in (("sampler", SAMPLERS), ("objective", OBJECTIVES)):
            if getattr(self, name) not in known:
                import difflib
                near = difflib.get_close_matches(str(getattr(self, name)), known, n=1)
                raise SearchError("E125", f"unknown --{name} {getattr(self, name)!r}",
                                  hint=(f"did you mean `{near[0]}`? " if near else "") + f"one of {', '.join(known)}")
        if self.study is not None and (not isinstance(self.study, str) or not self.study.strip()):
            raise SearchError("E125", f"--study must be a name, got {self.study!r}")
        return self


@dataclass
class SearchResult:
    """What a search gives back: the study, its trials (one dict each), the best one and the files."""

    study: str
    storage: str
    out: Path
    trials: list = field(default_factory=list)
    best: dict | None = None
    best_spec: Path | None = None
    pareto: Path | None = None
    edf: Path | None = None

    @property
    def trained(self) -> list:
        return [t for t in self.trials if t["state"] == "COMPLETE"]

    @property
    def failed(self) -> list:
        return [t for t in self.trials if t["state"] != "COMPLETE"]


# ----------------------------------------------------------------------------- the API

def search(spec, trials: int = 10, *, worker: int | None = None, **options):
    """Search the design space of ``spec`` (a path or spec text) and return a :class:`SearchResult`.

    ``options`` are :class:`SearchOptions` fields (``data``, ``steps``, ``sampler``, ``storage``,
    ``study``, ``workers``, ``out``, ``latency``...), check keywords (``network``, ``inputs``,
    ``limits``, ``roots``) and network parameters, which pin their dimensions (``classes=10``).
    ``worker``: run as worker number ``worker`` on an existing study and return None (what the
    worker processes of ``workers=K`` do)."""
    names = set(SearchOptions.__dataclass_fields__)
    o = SearchOptions(trials=trials, **{k: options.pop(k) for k in list(options) if k in names}).checked()
    check = options
    loader, space = _open(spec, check)
    if worker is not None:
        import torch   # the workers share the machine's cores: each its part, none oversubscribing them
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // o.workers))
        storage = _storage(o.storage)
        study = _load_study(o, storage, space)
        _work(study, loader, space, o, worker, _lock_for(o.storage))
        return None
    if o.sampler == "grid":
        _grid(space)   # every domain finite, before anything is written
    out = Path(o.out) if o.out else _default_dir(_stem(spec))
    out.mkdir(parents=True, exist_ok=True)
    o.out = str(out)
    o.storage = o.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    o.study = o.study or f"{_stem(spec)}-{_space_hash(space)}"
    storage = _storage(o.storage)
    study = _load_study(o, storage, space, create=True)
    if o.workers == 1:
        _work(study, loader, space, o, 0, _lock_for(o.storage))
    else:
        _spawn(spec, check, o, out)
    return _report(study, loader, space, o, out)


def _open(spec, check: dict):
    from .frontend import SpaceLoader
    loader = SpaceLoader(spec, **check)
    if not loader.space:
        nets = loader.module.networks
        name = loader.network or (list(nets)[-1] if nets else "?")
        err = SearchError("E129", f"nothing to search: network `{name}` declares no design space"
                          + (" (every dimension is pinned by a parameter given)" if loader.params else ""),
                          hint="give a network parameter a domain: `width = choice([16, 32, 64])`, "
                               "`depth = int_range(2, 8)`, `mult = float_range(0.25, 4, log=true)`")
        err.sources = dict(loader.loader.sources)
        raise err
    return loader, loader.space


def _stem(spec) -> str:
    from .frontend import is_text
    return "space" if is_text(spec) else Path(os.fspath(spec)).stem


def _space_hash(space: dict) -> str:
    text = json.dumps([[k, d.text()] for k, d in space.items()])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _default_dir(stem: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = Path("runs") / f"search-{stem}-{stamp}", 2
    while path.exists():
        path, n = Path("runs") / f"search-{stem}-{stamp}-{n}", n + 1
    return path


# ----------------------------------------------------------------------------- storage and study

def _quiet_optuna():
    try:
        import optuna
    except ImportError:
        raise SearchError("E125", "archdsl search needs Optuna, which is not installed here",
                          hint="pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _storage(url: str):
    """The RDB storage at ``url`` with heartbeats and one retry of a dead worker's trial (E127)."""
    import warnings
    optuna = _quiet_optuna()
    from optuna import storages
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    try:
        with warnings.catch_warnings():   # heartbeats are "experimental" in Optuna, and have been since 2.8
            warnings.simplefilter("ignore")
            if hasattr(storages, "RetryHeartbeatStaleTrialCallback"):    # Optuna >= 4.9
                retry = {"heartbeat_stale_trial_callback": storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
            else:
                retry = {"failed_trial_callback": storages.RetryFailedTrialCallback(max_retry=1)}
            return storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT_S, **retry)
    except ModuleNotFoundError as e:
        raise SearchError("E127", f"cannot open the storage {_safe(url)}: its database driver `{e.name}` is not "
                          "installed", hint="for PostgreSQL: pip install psycopg2-binary, and a URL "
                          "postgresql+psycopg2://USER:PASSWORD@HOST/DB") from None
    except (optuna.exceptions.OptunaError, ValueError, ImportError, Exception) as e:  # sqlalchemy's errors too
        if isinstance(e, (KeyboardInterrupt, ArchError)):
            raise
        why = str(getattr(e, "orig", None) or e).splitlines()[0][:200]
        raise SearchError("E127", f"cannot open the storage {_safe(url)}: {why}",
                          hint="an Optuna RDB URL: sqlite:///PATH/study.db (the default, in the run folder) "
                               "or postgresql+psycopg2://USER:PASSWORD@HOST/DB") from None


def _safe(url: str) -> str:
    """A storage URL as messages show it: without its password."""
    head, at, tail = url.rpartition("@")
    if at and "://" in head:
        scheme, _, cred = head.partition("://")
        return f"{scheme}://{cred.split(':', 1)[0]}:***@{tail}"
    return url


def _load_study(o: SearchOptions, storage, space: dict, create: bool = False):
    optuna = _quiet_optuna()
    sampler = {"tpe": lambda: optuna.samplers.TPESampler(seed=o.seed),
               "random": lambda: optuna.samplers.RandomSampler(seed=o.seed),
               "grid": lambda: optuna.samplers.GridSampler(_grid(space), seed=o.seed)}[o.sampler]()
    try:
        if create:
            return optuna.create_study(storage=storage, sampler=sampler, study_name=o.study, direction="maximize",
                                       load_if_exists=True)
        return optuna.load_study(storage=storage, sampler=sampler, study_name=o.study)
    except Exception as e:
        if isinstance(e, (KeyboardInterrupt, ArchError)):
            raise
        raise SearchError("E127", f"cannot open study `{o.study}` in {_safe(o.storage)}: {str(e).splitlines()[0][:200]}",
                          hint="a study is created by `archdsl search` without --worker") from None


def _lock_for(url: str | None):
    """A lock that makes "count the trials, then start one" atomic among the local workers of a
    SQLite study (a file lock beside the database); other storages: none (workers on many machines
    may start one trial each past the total at the very end)."""
    if url and url.startswith("sqlite:///"):
        return _FileLock(url[len("sqlite:///"):] + ".lock")
    return _FileLock(None)


class _FileLock:
    def __init__(self, path: str | None):
        self.path, self.fd = path, None

    def acquire(self) -> None:
        if self.path is None:
            return
        import fcntl
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self.fd is not None:
            import fcntl
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


# ----------------------------------------------------------------------------- the trials

def _categories(d) -> tuple[list, dict]:
    """A choice's options as Optuna holds them (plain values; a list or dict choice by its text)
    and the way back to the value."""
    from .values import show
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in d.choices):
        return list(d.choices), {c: c for c in d.choices}
    labels = [show(c) for c in d.choices]
    return labels, dict(zip(labels, d.choices))


def _grid(space: dict) -> dict:
    """The grid of a space whose every domain is finite (else E126)."""
    grid = {}
    for name, d in space.items():
        if not d.finite:
            raise SearchError("E126", f"--sampler grid needs every domain finite: `{name}` is {d.text()}",
                              hint="give it a choice of values (`choice([0.25, 0.5, 1.0])`), or use --sampler "
                                   "tpe or random")
        grid[name] = _categories(d)[0] if d.kind == "choice" else d.values()
    return grid


def _suggest(trial, name: str, d):
    if d.kind == "choice":
        options, back = _categories(d)
        return back[trial.suggest_categorical(name, options)]
    if d.kind == "int":
        return trial.suggest_int(name, d.low, d.high, step=1 if d.log else d.step, log=d.log)
    return trial.suggest_float(name, float(d.low), float(d.high), log=d.log)


def _work(study, loader, space: dict, o: SearchOptions, index: int, lock: _FileLock) -> None:
    """One worker: start trials while the study holds fewer than ``o.trials`` (or one waits to be retried)."""
    from optuna.trial import TrialState
    total = o.trials
    if o.sampler in ("tpe", "random"):   # each worker its own stream of draws
        study.sampler = type(study.sampler)(seed=o.seed + index)
    else:                                # a grid is walked once
        total = min(total, math.prod(len(v) for v in _grid(space).values()))
    import warnings

    from optuna.storages import fail_stale_trials
    while True:
        lock.acquire()
        try:
            with warnings.catch_warnings():   # (an "experimental" function since Optuna 2.9)
                warnings.simplefilter("ignore")
                fail_stale_trials(study)      # a killed worker's trial: FAIL, and enqueued again once
            trials = study.get_trials(deepcopy=False)
            if len(trials) >= total and not any(t.state == TrialState.WAITING for t in trials):
                return
            study.optimize(lambda t: _trial(t, loader, space, o, lock), n_trials=1, catch=(_DesignFailed,),
                           gc_after_trial=False, show_progress_bar=False)
        finally:
            lock.release()


def _trial(trial, loader, space: dict, o: SearchOptions, lock: _FileLock) -> float:
    from .runs import write_json
    lock.release()   # the trial exists: the other workers may count it and go on
    values = {name: _suggest(trial, name, d) for name, d in space.items()}
    folder = Path(o.out) / f"trial_{trial.number:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    info = {"number": trial.number, "design": values}

    def fail(e: ArchError, stage: str):
        trial.set_user_attr("error", e.code)
        trial.set_user_attr("message", e.message)
        write_json(folder / "trial.json", {**info, "state": "FAIL", "stage": stage, "error": e.code,
                                           "message": e.message})
        _say(o, f"trial {trial.number}: {_design_text(values)}: {stage} failed, error[{e.code}]: {e.message}")
        raise _DesignFailed(e.code)

    try:
        graph = loader.design(values)
    except ArchError as e:
        fail(e, "check")
    from . import analyze
    totals = analyze.summary(graph).totals
    trial.set_user_attr("params", totals["params"])
    trial.set_user_attr("macs", totals["macs"])
    from .training import train
    try:
        result = train(graph, data=o.data, steps=o.steps, batch=o.batch, lr=o.lr, device=o.device, seed=o.seed,
                       out=str(folder), quiet=True)
    except ArchError as e:
        fail(e, "training")
    value = result.best_val_acc if o.objective == "best_val_acc" else result.val_acc
    trial.set_user_attr("run_dir", str(folder))
    trial.set_user_attr("val_acc", result.val_acc)
    trial.set_user_attr("best_val_acc", result.best_val_acc)
    write_json(folder / "trial.json", {**info, "state": "COMPLETE", "params": totals["params"],
                                       "macs": totals["macs"], "val_acc": result.val_acc,
                                       "best_val_acc": result.best_val_acc})
    _say(o, f"trial {trial.number}: {_design_text(values)}: {o.objective} {value:.4f} "
            f"({totals['params']:,} params, {result.summary.get('wall_s', 0):.1f} s)")
    return value


def _say(o: SearchOptions, line: str) -> None:
    if not o.quiet:
        print(line, file=sys.stderr, flush=True)


def _design_text(values: dict) -> str:
    from .values import show
    return ", ".join(f"{k}={v if isinstance(v, str) else show(v, 40)}" for k, v in values.items())


def _spawn(spec, check: dict, o: SearchOptions, out: Path) -> None:
    """``o.workers`` worker processes on the study; waits for them all."""
    from .extern import plugin_args
    from .frontend import is_text
    if is_text(spec):
        path = out / "space.arch"
        path.write_text(spec, encoding="utf-8")
        spec = path
    argv = [sys.executable, "-m", *_entry(), os.fspath(spec), *_check_argv(check), *plugin_args(),
            "--trials", str(o.trials), "--data", o.data, "--steps", str(o.steps), "--batch", str(o.batch),
            "--lr", repr(o.lr), "--seed", str(o.seed), "--objective", o.objective, "--sampler", o.sampler,
            "--storage", o.storage, "--study", o.study, "--out", str(out), "--workers", str(o.workers),
            *(["--device", o.device] if o.device else []), *(["--quiet"] if o.quiet else [])]
    procs = [subprocess.Popen([*argv, "--worker", str(i)]) for i in range(o.workers)]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        raise
    bad = [i for i, c in enumerate(codes) if c != 0]
    if bad:
        print(f"note: worker{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))} stopped with status "
              f"{', '.join(str(codes[i]) for i in bad)}", file=sys.stderr)


def _entry() -> list:
    """How a worker is started: ``python -m archdsl search`` once the command line has the
    command, else this module's own ``main`` (``python -m archdsl.search``)."""
    from . import cli
    return ["archdsl", "search"] if "search" in getattr(cli, "COMMANDS", {}) else ["archdsl.search"]


def _check_argv(check: dict) -> list:
    """Check keywords and parameters as the command-line options of a worker."""
    from .specwriter import literal
    from .values import Expr

    def text(v) -> str:
        return v.text if isinstance(v, Expr) else literal(v)
    argv = []
    for key, value in check.items():
        if value is None:
            continue
        if key == "network":
            argv += ["--network", value]
        elif key == "inputs":
            argv += [a for k, v in value.items() for a in ("--input", f"{k}={text(v)}")]
        elif key == "limits":
            argv += [a for k, v in value.items() for a in ("--limit", f"{k}={v}")]
        elif key == "roots":
            argv += [a for r in value for a in ("--allow-import", os.fspath(r))]
        elif key not in _CHECK_KEYS:
            argv += ["--set", f"{key}={text(value)}"]
    return argv


# ----------------------------------------------------------------------------- the report

def _rows(study) -> list[dict]:
    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        a = t.user_attrs
        rows.append({"number": t.number, "state": t.state.name, "design": dict(t.params), "value": t.value,
                     "error": a.get("error"), "message": a.get("message"), "params": a.get("params"),
                     "macs": a.get("macs"), "val_acc": a.get("val_acc"), "run_dir": a.get("run_dir"),
                     "latency_ms": None})
    return rows


def _report(study, loader, space: dict, o: SearchOptions, out: Path) -> SearchResult:
    rows = _rows(study)
    result = SearchResult(o.study, _safe(o.storage), out, rows)
    trained = [r for r in rows if r["state"] == "COMPLETE" and r["run_dir"]]
    graphs = {r["number"]: _trained_graph(r) for r in trained}
    if o.latency and trained:
        from .benchmark import measure_latency
        for r in trained:
            r["latency_ms"] = measure_latency(graphs[r["number"]], **LATENCY).median_ms
    if trained:
        best = max(trained, key=lambda r: (r["value"], -(r["macs"] or 0), -r["number"]))   # ties: the cheaper
        result.best = best
        result.best_spec = out / "best.arch"
        _write_best(graphs[best["number"]], result.best_spec)
        result.pareto, result.edf = _plots(trained, out, o)
    runs_json = [{k: v for k, v in r.items()} for r in rows]
    from .runs import write_json
    write_json(out / "search.json", {"study": o.study, "storage": _safe(o.storage), "objective": o.objective,
                                     "trials": runs_json, "best": result.best and result.best["number"]})
    _table(result, o, space)
    if not trained:
        codes = Counter(r["error"] or r["state"] for r in rows)
        common = ", ".join(f"{c} ×{n}" for c, n in codes.most_common(3))
        raise SearchError("E128", f"no design of the space could be trained: all {len(rows)} trials failed "
                          f"({common})", hint="see each trial's message in the table (or DIR/trial_NNN/trial.json); "
                          "widen the space, or loosen its `require`s")
    return result


def _trained_graph(row: dict):
    """The graph a trial trained, replayed from its run folder's record."""
    from .frontend import check_files
    from .runs import read_json
    return check_files(read_json(Path(row["run_dir"]) / "record.json", "the trial's record"))


def _write_best(graph, path: Path) -> None:
    from . import check
    from .files import write_atomic
    from .specwriter import write_checked
    write_atomic(path, write_checked(graph, lambda t: check(t, text=True)))


def _table(result: SearchResult, o: SearchOptions, space: dict) -> None:
    if o.quiet:
        return
    from rich.console import Console
    from rich.table import Table

    from .report import fmt_count, plain
    rows = result.trials
    trained = result.trained
    title = (f"search {result.study}: {len(rows)} trial{'s' * (len(rows) != 1)}, {len(trained)} "
             f"design{'s' * (len(trained) != 1)} trained, {len(rows) - len(trained)} failed; {o.objective} after "
             f"{o.steps} steps on {o.data}")
    t = Table(box=None, pad_edge=False)
    cols = ["trial", *space, "params", "MACs", *(["latency ms"] if o.latency else []), o.objective, "note"]
    for c in cols:
        t.add_column(plain(c), justify="left" if c in ("trial", "note") else "right")
    best = result.best and result.best["number"]
    for r in rows:
        note = "best" if r["number"] == best else (f"error[{r['error']}]" if r["error"] else
                                                   r["state"].lower() if r["state"] != "COMPLETE" else "")
        t.add_row(str(r["number"]), *(plain(_cell(r["design"].get(k, ""))) for k in space),
                  fmt_count(r["params"]) if r["params"] is not None else "",
                  fmt_count(r["macs"]) if r["macs"] is not None else "",
                  *([f"{r['latency_ms']:.3f}" if r["latency_ms"] is not None else ""] if o.latency else []),
                  f"{r['value']:.4f}" if r["value"] is not None else "", note)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    console.print(plain(title), soft_wrap=True)
    console.print(t)
    if result.best_spec:
        console.print(plain(f"best: trial {best} ({o.objective} {result.best['value']:.4f}), written to "
                            f"{result.best_spec}; plots {result.pareto}, {result.edf}"))


def _cell(v) -> str:
    from .values import show
    return v if isinstance(v, str) else f"{v:.4g}" if isinstance(v, float) else show(v, 24)


def _front(points: list) -> list:
    """The Pareto front of (cost, accuracy) points: lower cost, higher accuracy."""
    front, top = [], -math.inf
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if a > top:
            front.append((c, a))
            top = a
    return front


def _plots(trained: list, out: Path, o: SearchOptions) -> tuple[Path, Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    axes_for = [("macs", "MACs")] + ([("latency_ms", "latency (ms, batch 1, CPU)")] if o.latency else [])
    fig, axes = plt.subplots(1, len(axes_for), figsize=(5.5 * len(axes_for), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], axes_for):
        pts = [(r[key], r["value"]) for r in trained if r[key] is not None]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, alpha=0.7, label="trained designs")
        front = _front(pts)
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="C3", label="Pareto front")
        if key == "macs" and pts and min(p[0] for p in pts) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(o.objective)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{o.study}: {len(trained)} trained designs")
    fig.tight_layout()
    pareto = out / "pareto.png"
    fig.savefig(pareto, dpi=110)
    plt.close(fig)
    errors = sorted(1 - r["val_acc"] for r in trained)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.step([0, *errors], [0, *((i + 1) / len(errors) for i in range(len(errors)))], where="post")
    ax.set_xlabel("validation error")
    ax.set_ylabel("fraction of trained designs")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(f"error EDF, {len(errors)} designs, {o.steps} steps")
    fig.tight_layout()
    edf = out / "edf.png"
    fig.savefig(edf, dpi=110)
    plt.close(fig)
    return pareto, edf


# ----------------------------------------------------------------------------- the command

def add_parser(subparsers) -> argparse.ArgumentParser:
    """``archdsl search``: the subcommand and its options."""
    from .cli import _common
    p = subparsers.add_parser("search", help="search a spec's design space with Optuna: train a trial per design",
                              description="Search the design space of a spec with Optuna: each trial draws a design, "
                                          "checks it and trains it briefly; the best is written as DIR/best.arch.")
    _common(p)
    a = p.add_argument
    a("--trials", type=int, required=True, metavar="N", help="the study's total number of trials, in any state")
    a("--data", default="digits", help="digits (default), cifar10:PATH, ... as `archdsl train --data`")
    a("--steps", type=int, default=100, metavar="S", help="training steps per design (default 100)")
    a("--batch", type=int, default=64, metavar="N", help="training batch (default 64)")
    a("--lr", type=float, default=0.05, metavar="X", help="learning rate (default 0.05)")
    a("--device", help="cpu, cuda, cuda:N (default: CUDA when there is one)")
    a("--seed", type=int, default=0, metavar="N", help="sampler and training seed (default 0)")
    a("--objective", default="val_acc", help="val_acc (default: the final validation accuracy) or best_val_acc")
    a("--sampler", default="tpe", help="tpe (default), random or grid (every domain finite)")
    a("--storage", metavar="URL", help="an Optuna RDB URL (default sqlite:///DIR/study.db)")
    a("--study", metavar="NAME", help="the study's name (default: the spec's stem and a hash of its space)")
    a("--workers", type=int, default=1, metavar="K", help="local worker processes on the storage (default 1)")
    a("--out", metavar="DIR", help="the run folder (default runs/search-<spec>-<time>)")
    a("--no-latency", dest="latency", action="store_false", help="do not measure the trained designs' latency")
    a("--quiet", action="store_true", help="no trial lines and no table")
    a("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return p


def run(args) -> int:
    """``archdsl search``: 0 searched, 1 a diagnostic."""
    from .cli import check_args
    kwargs = {k: v for k, v in check_args(args).items() if v is not None}
    options = {k: getattr(args, k) for k in ("data", "steps", "batch", "lr", "device", "seed", "objective", "sampler",
                                             "storage", "study", "workers", "out", "latency", "quiet")}
    if args.worker is not None:
        search(args.file, args.trials, worker=args.worker, **options, **kwargs)
        return 0
    result = search(args.file, args.trials, **options, **kwargs)
    print(f"{result.out}: {len(result.trials)} trials, {len(result.trained)} trained; best trial "
          f"{result.best['number']} ({args.objective} {result.best['value']:.4f}) in {result.best_spec}")
    return 0


def main(argv=None) -> int:
    """``python -m archdsl.search ARGS``: the command alone, with the exit statuses of ``archdsl``."""
    parser = argparse.ArgumentParser(prog="archdsl")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["search", *(sys.argv[1:] if argv is None else argv)])
    try:
        if args.plugin:
            from .extern import load_plugins
            load_plugins(args.plugin)
        from .frontend import resolve_spec
        args.file = resolve_spec(args.file)
        return run(args)
    except ArchError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
