"""The front end in one call: load (parse + imports) and elaborate into the IR.

What names a spec:

* in the API (``check`` and everything that takes a source): a string containing a
  newline, or any string with ``text=True``, is spec text; anything else (a string
  without a newline, a ``Path``) is a path;
* on the command line (:func:`resolve_spec`): ``-`` is standard input, an existing
  path is that file, and a bare name (no ``/``, no ``.arch``) is a spec of the
  packaged zoo (``archdsl check resnet50``).

Every graph ``check`` returns carries ``graph.record``, the loading record: every
source text elaboration read and the arguments it ran with, as plain data, from which
:func:`check_files` elaborates the same IR again without the file system.
"""
from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from .elaborate import design_space, elaborate
from .errors import ArchError, ElaborationError, LimitError, Limits, SpecImportError, did_you_mean
from .evaluate import Ctx, Evaluator
from .ir import ArchGraph
from .loader import Loader, library_dirs
from .syntax import Var, parse_expr
from .values import Domain, Expr, show

RECORD_VERSION = 1
_RECORD_KEYS = {"version", "main", "files", "shown", "imports", "network", "params", "inputs", "limits",
                "roots", "opaque"}


def is_text(source) -> bool:
    """Spec text rather than a path: a string with a newline (any other string is a path)."""
    return isinstance(source, str) and "\n" in source


def resolve_spec(name: str) -> str | Path:
    """What a command-line FILE names: ``"-"`` (standard input) as is, else the path to read.

    An existing path is that file (whatever it is: a FIFO or a directory is refused
    later, when it is opened); otherwise a bare name, without ``/`` and ``.arch``, is
    looked up in the packaged zoo; anything else is E070.
    """
    if name == "-":
        return name
    if os.path.lexists(name):
        return Path(name)
    _, zoo = library_dirs()
    bare = name and "/" not in name and os.sep not in name and not name.endswith(".arch") and "\0" not in name
    if bare and (zoo / f"{name}.arch").is_file():
        return zoo / f"{name}.arch"
    try:
        known = [p.stem for p in zoo.glob("*.arch")] if bare else []
    except OSError:
        known = []
    raise SpecImportError("E070", f"cannot read {show(name)}: no such file" + (", and no zoo spec of that name"
                                                                           if bare else ""),
                          hint=did_you_mean(name, known) or "a spec is a path, `-` (standard input) or the name "
                                                            "of a zoo spec (`archdsl zoo` lists them)")


def check(source: str | os.PathLike | None, *, network: str | None = None, inputs: dict | None = None,
          limits: Limits | dict | None = None, roots: list | None = None, base: str | None = None,
          text: bool | None = None, files: dict | None = None, **params) -> ArchGraph:
    """Parse, elaborate and shape-check a spec (a path or its text); returns the IR.

    ``params`` override the network's parameters (``classes=10``), ``inputs`` its
    input shapes (``{"image": [3, 64, 64]}``), ``limits`` the resource limits;
    ``text=True`` takes ``source`` as spec text whatever it looks like (imports resolve
    from ``base``, by default the working directory).
    ``files`` (a loading record, below) elaborates the record again instead, reading
    no file (:func:`check_files`); ``source`` is then None or names the record's main
    file, and the record holds the network, parameters and inputs.
    Raises :class:`ArchError` for every mistake in the spec.

    The graph's ``record`` attribute is the loading record, a dict of plain data
    (str, int, float, bool, None, list, tuple, dict only):

    * ``version``: 1;
    * ``main``: the main file's key (its real path; spec text is ``<base>/<string>``
      or ``<base>/<stdin>``);
    * ``files``: key -> text of every file elaboration read, imports included;
    * ``shown``: key -> the file name diagnostics and spans print;
    * ``imports``: importer key -> {import string -> key}, how every import resolved;
    * ``network``: the network elaborated (its name, never None);
    * ``params``, ``inputs``: the overrides ``check`` was given (plain copies);
    * ``opaque``: names of parameters whose value is not plain data (an op value from
      ``--set b=conv(3)``); they are left out of ``params`` and the record cannot be replayed;
    * ``limits``: every limit, as a dict; ``roots``: the extra import roots, as strings.
    """
    if files is not None:
        if network is not None or inputs is not None or params or text or base is not None or roots:
            raise TypeError("check(files=record) takes only limits: the record holds the rest")
        return check_files(files, limits=limits, main=source)
    limits = limits if isinstance(limits, Limits) else Limits.of(limits)
    loader = Loader(limits, roots)

    def load():
        if text or (text is None and is_text(source)):
            return loader.load_text(source, "<string>" if text is None else "<stdin>", base)
        return loader.load_file(os.fspath(source))  # (not Path(): Path("") would be the working directory)
    return _front_end(loader, load, network, params, inputs or {}, limits)


def check_files(record: dict, *, limits: Limits | dict | None = None, main: str | os.PathLike | None = None
                ) -> ArchGraph:
    """Elaborate a loading record (``graph.record``) again, from its texts alone.

    The file system is never touched: imports resolve through the record's table.
    ``limits`` replaces the record's limits (a caller that does not trust the record
    can bound the work); ``main``, when given, must name the record's main file (its
    key or its shown name). A malformed record is E075.
    """
    rec = _valid_record(record)
    if main is not None and os.fspath(main) not in (rec["main"], rec["shown"][rec["main"]]):
        raise ArchError("E075", f"the loading record's main file is {show(rec['shown'][rec['main']])}, "
                        f"not {show(os.fspath(main))}", hint="pass source=None to replay a record")
    if limits is None:
        limits = Limits.of(rec["limits"])
    elif not isinstance(limits, Limits):
        limits = Limits.of(limits)
    for key, text in rec["files"].items():
        if len(text.encode("utf-8", "surrogatepass")) > limits.source:
            raise ArchError("E006", f"{rec['shown'][key]} is over the source limit of {limits.source:,} bytes",
                            hint="raise it with `--limit source=N`")
    loader = Loader(limits, rec["roots"], replay=rec)
    return _front_end(loader, loader.load_record, rec["network"], rec["params"], rec["inputs"], limits)


def _front_end(loader: Loader, load, network, params: dict, inputs: dict, limits: Limits) -> ArchGraph:
    try:
        module = load()
        params, inputs = _read_overrides(module, network, params, inputs, limits)
        graph = elaborate(module, network, params, inputs, limits, loader.sources)
    except RecursionError:  # imports nested past the Python stack (only with `--limit depth` raised)
        raise LimitError("E086", "the spec nests too deeply to load", hint="imports nest too deeply") from None
    except ArchError as e:
        e.sources = {**loader.sources, **e.sources}
        raise
    # a parameter of the design space is recorded as plain data: its block and op choices by name
    params = {k: graph.design_params.get(k, v) for k, v in params.items()}
    graph.record = _record(loader, graph.network, params, inputs, limits)
    if os.environ.get("ARCHDSL_LINT"):  # the test suite checks the IR's invariants on every elaboration
        graph.lint()
    return graph


# ----------------------------------------------------------------------------- design spaces

class SpaceLoader:
    """A spec loaded once, to elaborate many designs of its space (``archdsl sample``, ``search``):
    parsing, imports and the ``--set`` values are read once; :meth:`design` elaborates one design.

    ``space`` is the design space (dimension name -> plain :class:`~archdsl.values.Domain`, in
    declaration order, as ``graph.space``), without the dimensions of the parameters given in
    ``params`` (those are pinned). Raises :class:`ArchError` for a spec that cannot be loaded or
    whose parameters cannot be bound."""

    def __init__(self, source, *, network: str | None = None, inputs: dict | None = None,
                 limits: Limits | dict | None = None, roots: list | None = None, base: str | None = None,
                 text: bool | None = None, **params):
        self.limits = limits if isinstance(limits, Limits) else Limits.of(limits)
        self.loader = Loader(self.limits, roots)
        try:
            if text or (text is None and is_text(source)):
                self.module = self.loader.load_text(source, "<string>" if text is None else "<stdin>", base)
            else:
                self.module = self.loader.load_file(os.fspath(source))
            self.network = network
            self.params, self.inputs = _read_overrides(self.module, network, params, inputs or {}, self.limits)
            space, self.defaults = design_space(self.module, network, self.params, self.limits, self.loader.sources)
        except RecursionError:
            raise LimitError("E086", "the spec nests too deeply to load", hint="imports nest too deeply") from None
        except ArchError as e:
            e.sources = {**self.loader.sources, **e.sources}
            raise
        pinned = {k for k in self.params}
        self.space = {k: d for k, d in space.items() if k.split("[", 1)[0] not in pinned}

    def overrides(self, values: dict) -> dict:
        """The network parameters for one design: ``values`` (dimension -> plain value, block and op
        choices by name) put together with the pinned parameters."""
        out = dict(self.params)
        for name, default in self.defaults.items():
            if isinstance(default, (list, tuple)) and any(f"{name}[{i}]" in values for i in range(len(default))):
                items = [values.get(f"{name}[{i}]", v.default if isinstance(v, Domain) else v)
                         for i, v in enumerate(default)]
                out[name] = type(default)(items)
            elif name in values:
                out[name] = values[name]
        return out

    def design(self, values: dict) -> ArchGraph:
        """Elaborate and shape-check one design (``values`` as :meth:`overrides` takes them)."""
        params = self.overrides(values)
        try:
            graph = elaborate(self.module, self.network, params, dict(self.inputs), self.limits, self.loader.sources)
        except RecursionError:
            raise LimitError("E086", "the spec nests too deeply to load", hint="imports nest too deeply") from None
        except ArchError as e:
            e.sources = {**self.loader.sources, **e.sources}
            raise
        params = {k: graph.design_params.get(k, v) for k, v in params.items()}
        graph.record = _record(self.loader, graph.network, params, self.inputs, self.limits)
        if os.environ.get("ARCHDSL_LINT"):
            graph.lint()
        return graph


# ----------------------------------------------------------------------------- --set and --input values

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _read_overrides(module, network, params: dict, inputs: dict, limits: Limits):
    """``params`` and ``inputs`` with every :class:`~archdsl.values.Expr` evaluated in the scope of
    the loaded main file: its blocks, its top-level `let`s (and those it imports), the ops and the
    builtins. A parameter the network does not declare is left as it is, for E012."""
    if not any(isinstance(v, Expr) for v in (*params.values(), *inputs.values())):
        return params, inputs
    nets = module.networks
    net = nets.get(network) if network is not None else list(nets.values())[-1] if nets else None
    declared = {p.name for p in net.params} if net is not None else set()
    ev = Evaluator(limits)
    params = {k: _read_expr(v, module, ev, limits) if isinstance(v, Expr) and k in declared else v
              for k, v in params.items()}
    inputs = {k: _read_expr(v, module, ev, limits) if isinstance(v, Expr) else v for k, v in inputs.items()}
    return params, inputs


def _read_expr(e: Expr, module, ev: Evaluator, limits: Limits):
    """The value of one ``--set``/``--input`` text in ``module``'s scope. A bare word that names
    nothing there (a block, a top-level `let`, an op; builtins are not values of the spec: `max`
    is the string "max") is its own string, and ``e.note`` hears so; any other text is an
    expression of the language, its diagnostics shown in the file ``<--set NAME>``."""
    file = f"<{e.what}>"
    try:
        node = parse_expr(e.text, file, limits=limits)
        if isinstance(node, Var) and _WORD.fullmatch(e.text):
            try:
                return ev.lookup(node.name, Ctx({}, module), node.span, callable_only=True)  # (not a builtin)
            except ElaborationError as err:
                if err.code != "E010" or err.span != node.span:  # (not an error of the spec's own lets)
                    raise
            if e.note is not None:
                e.note(f"{e.what}={e.text}: `{e.text}` names nothing in the spec; passed as the string "
                       f"{show(e.text)}")
            return e.text
        return ev.ev(node, Ctx({}, module), None)
    except ArchError as err:
        err.sources = {file: e.text, **err.sources}
        raise


# ----------------------------------------------------------------------------- the loading record

class _Opaque(Exception):
    """A value that is not plain data."""


_ATOMS = (str, int, float, bool, type(None))


def plain(value, depth: int = 0):
    """A copy of ``value`` made of str, int, float, bool, None, list, tuple and dict only."""
    if type(value) in _ATOMS:
        return value
    if depth > 200:
        raise _Opaque
    if type(value) in (list, tuple):
        return type(value)(plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in value.items()}
    raise _Opaque


def _record(loader: Loader, network: str, params: dict, inputs: dict, limits: Limits) -> dict:
    kept, opaque = {}, []
    for name, value in params.items():
        try:
            kept[name] = plain(value)
        except (_Opaque, RecursionError):
            opaque.append(name)
    try:
        inputs = plain(dict(inputs))
    except (_Opaque, RecursionError):
        inputs, opaque = {}, opaque + ["<inputs>"]
    return {"version": RECORD_VERSION, "main": loader.main, "files": dict(loader.files),
            "shown": dict(loader.shown), "imports": {k: dict(v) for k, v in loader.resolved.items()},
            "network": network, "params": kept, "inputs": inputs, "opaque": opaque,
            "limits": dataclasses.asdict(limits), "roots": [str(r) for r in loader.extra_roots]}


def _bad(why: str) -> ArchError:
    return ArchError("E075", f"not a loading record: {why}",
                     hint="a loading record is `graph.record` of a checked spec, as plain data")


def _str_dict(value, what: str, values=str) -> dict:
    if type(value) is not dict or any(type(k) is not str or type(v) is not values for k, v in value.items()):
        raise _bad(f"`{what}` must be a dict of strings to {values.__name__}")
    return value


def _valid_record(record) -> dict:
    """The record, checked field by field: it may come from an untrusted pickle."""
    if type(record) is not dict:
        raise _bad(f"a {type(record).__name__}, not a dict")
    if set(record) - _RECORD_KEYS or _RECORD_KEYS - {"opaque"} - set(record):
        raise _bad("its fields are " + ", ".join(sorted(map(str, record))))
    if record["version"] != RECORD_VERSION or type(record["version"]) is not int:
        raise _bad(f"version {show(record['version'])}, this archdsl reads version {RECORD_VERSION}")
    files = _str_dict(record["files"], "files")
    shown = _str_dict(record["shown"], "shown")
    imports = _str_dict(record["imports"], "imports", dict)
    if type(record["main"]) is not str or record["main"] not in files or set(shown) != set(files):
        raise _bad("`main` and every key of `shown` must be a key of `files`")
    for importer, table in imports.items():
        if any(key not in files for key in _str_dict(table, f"imports[{show(importer)}]").values()):
            raise _bad(f"an import of {show(importer)} resolves to a file the record does not hold")
    if record.get("opaque"):
        raise ArchError("E075", "the record cannot be replayed: parameter " + ", ".join(
            f"`{n}`" for n in map(str, record["opaque"])) + " was set to a value that is not plain data",
            hint="set network parameters to numbers, strings, lists or dicts to make a replayable record")
    if record["network"] is not None and type(record["network"]) is not str:
        raise _bad("`network` must be a string")
    roots = record["roots"]
    if type(roots) not in (list, tuple) or any(type(r) is not str for r in roots):
        raise _bad("`roots` must be a list of strings")
    try:
        params, inputs = plain(record["params"]), plain(record["inputs"])
    except (_Opaque, RecursionError):
        raise _bad("`params` and `inputs` must be plain data") from None
    if type(params) is not dict or type(inputs) is not dict or type(record["limits"]) is not dict:
        raise _bad("`params`, `inputs` and `limits` must be dicts")
    return {**record, "params": params, "inputs": inputs, "roots": list(roots)}
