"""Ops from Python: the plugin API (docs/plugins.md is its reference).

A plugin is a Python module that declares ops with the same :class:`Op` base the built-in
ones use: a signature (``params``), a shape rule, weights, MACs, torch code and a drawing
category. Its ops join the registry (``archdsl.ops.OPS``) only when the user opts in,
``--plugin NAME`` on the command line or ``plugins=[...]`` in the API, and never because a
spec names them: a spec alone never loads Python. ::

    from archdsl.extern import Op, P, req, op

    @op
    class Swiglu(Op):
        name, category = "swiglu", "linear"
        params = (req("hidden", min=1),)
        imports = ("my_plugin",)              # what the torch code below refers to
        def shape(self, a, xs): return (*xs[0][:-1], a["hidden"])
        def weights(self, a, xs, y): return 2 * xs[0][-1] * a["hidden"], 0
        def module(self, a, xs, y): return "my_plugin.SwiGLU", (xs[0][-1], a["hidden"]), {}
        def forward(self, a, args, mod, inplace): return f"{mod}({args[0]})"

NAME is an importable module, or else the name of an entry point in the group
``archdsl.plugins`` of an installed package, looked up by that exact name (no other entry
point is ever read into Python). A plugin's identity is its module's name: that is what
an op records (``op.plugin``), what a pickled model lists, and what :func:`loaded_plugins`
gives the processes a command starts, which must load the same plugins.

What can go wrong is a diagnostic: E097 (no such plugin), E098 (it cannot be loaded: its
import raised, a name clash, a malformed declaration) and E099 (one of its rules failed
or gave something malformed while a spec was checked: a bug of the plugin, shown at the
spec line that used the op).
"""
from __future__ import annotations

import importlib
import math
import re
import sys

from .errors import CODES, ArchError
from .evaluate import PLUGIN_HINT  # noqa: F401 (part of this API: the E010 hint)
from .ops import OPS
from .ops.plugins import LOADED as _LOADED, MODULE as _MODULE  # noqa: F401 (part of this API)
from .ops.plugins import constructor_ok, imports_of, loaded_plugins, plugins_of, roots_of  # noqa: F401
from .ops.base import (HELPERS, BadArgument, Op, P, ShapeProblem, as_int, dim_of, numel, req, torch_dim,
                       torch_dims)

__all__ = ["op", "Op", "P", "req", "ShapeProblem", "BadArgument", "as_int", "dim_of", "numel", "torch_dim",
           "torch_dims", "load_plugins", "loaded_plugins", "plugins_of", "imports_of", "plugin_args",
           "GROUP", "CATEGORIES", "PLUGIN_HINT"]

GROUP = "archdsl.plugins"
"""The entry point group of installed plugins."""

CATEGORIES = ("conv", "linear", "norm", "activation", "pool", "join", "reshape", "regularize", "other")
"""The drawing and summary groups a plugin op may belong to (``io`` is the network's inputs')."""

"""The hint of E010 for an unknown op whose name is close to no known op."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BUG = "the plugin's rule is at fault, not the spec: report it to the plugin's author"

_DECLARED: dict[str, list[type]] = {}   # module name -> the Op classes @op declared there, in order
_ALIASES: dict[str, str] = {}           # a name the user gave -> the plugin module it loaded


# ----------------------------------------------------------------------------- declaring

def op(cls: type) -> type:
    """Declare an op: a class decorator for :class:`Op` subclasses of a plugin module.

    Declaring registers nothing: the op joins the registry when its module is loaded as a
    plugin (:func:`load_plugins`), and it is checked then (E098). The class is returned as is."""
    if not (isinstance(cls, type) and issubclass(cls, Op)) or cls is Op:
        raise TypeError(f"@archdsl.extern.op declares subclasses of archdsl.extern.Op, not {cls!r}")
    _DECLARED.setdefault(cls.__module__, []).append(cls)
    return cls


# ----------------------------------------------------------------------------- loading

def load_plugins(names) -> tuple[str, ...]:
    """Load plugins by name (``--plugin NAME``; a string is one name): import each module, or
    the module of the entry point of that name in :data:`GROUP`, and register its ops. Loading
    a plugin again does nothing. Returns the plugins' module names, in the order given."""
    if names is None:
        return ()
    if isinstance(names, str):
        names = [names]
    out = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"plugin names are strings, not {type(name).__name__}")
        if name not in _ALIASES:
            module = _find(name)
            if module not in _LOADED:
                _register(name, module, _import(name, module))
            _ALIASES[name] = module
        out.append(_ALIASES[name])
    return tuple(out)


def plugin_args(plugins=None) -> list[str]:
    """``["--plugin", NAME, ...]`` for a worker's command line: the given plugins, or every
    plugin loaded here."""
    return [arg for p in (loaded_plugins() if plugins is None else plugins) for arg in ("--plugin", p)]


def _unload() -> None:
    """Forget every loaded plugin, as a fresh process has none (for tests: their modules stay
    imported, and loading them again registers their ops again)."""
    for name in [n for n, o in OPS.items() if getattr(o, "plugin", None)]:
        del OPS[name]
    _LOADED.clear()
    _ALIASES.clear()


def _diag(code: str, message: str, hint: str | None = None, notes=()) -> ArchError:
    assert code in CODES, code
    return ArchError(code, message, hint=hint, notes=list(notes))


def _find(name: str) -> str:
    """The module a plugin name means: the module itself, else its entry point's (E097, E098)."""
    import importlib.metadata
    import importlib.util
    if _MODULE.match(name):
        try:
            if importlib.util.find_spec(name) is not None:
                return name
        except (ImportError, ValueError):   # a parent that is no package, or no such parent
            pass
        except Exception as e:              # a parent package whose import raised
            raise _load_error(name, e) from None
    found = {ep.value: ep for ep in importlib.metadata.entry_points(group=GROUP, name=name)}
    if not found:
        raise _diag("E097", f"no plugin `{name}`: no module of that name, and no installed package has an "
                    f"entry point `{name}` in the group {GROUP}",
                    hint="a plugin is a module Python can import (on PYTHONPATH) or an installed package's entry "
                         "point; check the spelling")
    if len(found) > 1:
        raise _diag("E098", f"plugin `{name}` is ambiguous: installed packages give entry point `{name}` the values "
                    + ", ".join(sorted(found)), hint="name the module itself with `--plugin MODULE`")
    ep = next(iter(found.values()))
    if ep.attr or not _MODULE.match(ep.module or ""):
        raise _diag("E098", f"the entry point `{name}` of {GROUP} is `{ep.value}`: it must name a module",
                    hint=f"write it as `{name} = package.module` in the package's entry points")
    return ep.module


def _import(name: str, module: str):
    """Import a plugin's module (E098 if that raises), with what @op declared in it."""
    fresh = module not in sys.modules
    if fresh:
        _forget(module)
    try:
        return importlib.import_module(module)
    except (Exception, SystemExit) as e:
        if fresh:
            _forget(module)
        raise _load_error(name, e) from None


def _forget(module: str) -> None:
    for m in [m for m in _DECLARED if m == module or m.startswith(module + ".")]:
        del _DECLARED[m]


def _load_error(name: str, e: BaseException) -> ArchError:
    """E098 for a plugin whose import raised, with where it did (the plugin's own frame)."""
    import traceback
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "importlib" not in f.filename and not f.filename.startswith("<frozen")]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    notes = [f"raised at {where.filename}:{where.lineno}" + (f": {where.line}" if where.line else "")] if where else []
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return _diag("E098", f"plugin `{name}` failed to load: {type(e).__name__}" + (f": {text}" if text else ""),
                 hint=f"the error is in the plugin's Python code; fix it, or leave out `--plugin {name}`", notes=notes)


def _owner(name: str) -> str:
    plugin = getattr(OPS[name], "plugin", None)
    return f"plugin `{plugin}`" if plugin else "a built-in op"


def _register(name: str, module: str, mod) -> None:
    """Check every op the module declares, then register them all (or none: E098)."""
    shown = f"`{name}`" + (f" (module {module})" if name != module else "")
    classes = [c for m, cs in _DECLARED.items() if m == module or m.startswith(module + ".") for c in cs]
    if not classes:
        raise _diag("E098", f"plugin {shown} declares no ops",
                    hint="declare each op with `@archdsl.extern.op` on a subclass of `archdsl.extern.Op`")
    ops = {}
    for cls in classes:
        where = f"plugin {shown}, class {cls.__qualname__}"
        try:
            inst = cls()
        except Exception as e:
            raise _diag("E098", f"{where}: cannot be instantiated: {type(e).__name__}: {e}") from None
        problem = _malformed(inst)
        if problem:
            raise _diag("E098", f"{where}: {problem}", hint="see docs/plugins.md for what an op declares")
        if inst.name in OPS:
            raise _diag("E098", f"plugin {shown} declares op `{inst.name}`, which is {_owner(inst.name)}",
                        hint="an op name is taken once: rename the plugin's op, or load only one of the two")
        if inst.name in ops:
            raise _diag("E098", f"plugin {shown} declares op `{inst.name}` twice ({ops[inst.name].__class__.__qualname__}"
                        f" and {cls.__qualname__})")
        for m in getattr(inst, "imports", ()):
            try:
                importlib.import_module(m)
            except (Exception, SystemExit) as e:
                raise _load_error(name, e) from None
        inst.plugin = module
        _guard(inst)
        ops[inst.name] = inst
    OPS.update(ops)
    _LOADED[module] = tuple(ops)


def _malformed(inst: Op) -> str | None:
    """What is wrong with a declared op, or None."""
    from .evaluate import BUILTINS
    from .syntax import KEYWORDS
    name = inst.name
    if not isinstance(name, str) or not name.isascii() or not _NAME.match(name):
        return f"`name` must be a name of the language (letters, digits, _), got {name!r}"
    if name in KEYWORDS or name in BUILTINS or name in ("params", "input"):
        return f"`{name}` is a word of the language and cannot name an op"
    if inst.arity != 1:
        return f"`arity` must be 1 (a plugin op takes one input; joins are the language's), got {inst.arity!r}"
    if not isinstance(inst.params, tuple) or not all(isinstance(p, P) for p in inst.params):
        return "`params` must be a tuple of P(...) / req(...)"
    pnames = [p.name for p in inst.params]
    if not all(isinstance(p, str) and _NAME.match(p) for p in pnames) or len(set(pnames)) != len(pnames):
        return f"parameter names must be distinct names, got {pnames}"
    if inst.category not in CATEGORIES:
        return f"`category` must be one of {', '.join(CATEGORIES)}, got {inst.category!r}"
    imports = getattr(inst, "imports", ())
    if not isinstance(imports, tuple) or not all(isinstance(m, str) and _MODULE.match(m) for m in imports):
        return f"`imports` must be a tuple of module names, got {imports!r}"
    if any(m.split(".")[0] in ("torch", "nn", "F", "self", "collections") for m in imports):
        return "`imports` names the modules of the plugin; torch, nn and F are always there"
    if not isinstance(inst.helpers, tuple) or any(h not in HELPERS for h in inst.helpers):
        return f"`helpers` must name archdsl's prelude functions ({', '.join(HELPERS)})"
    if inst.keeps not in (None, "input", "output") or not all(isinstance(v, bool) for v in
                                                              (inst.view, inst.fresh, inst.elementwise)):
        return "`keeps` must be None, \"input\" or \"output\"; `view`, `fresh` and `elementwise` booleans"
    return None


# ----------------------------------------------------------------------------- guarding the rules

def _literal(v) -> bool:
    if isinstance(v, tuple):
        return all(map(_literal, v))
    return v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _guard(inst: Op) -> None:
    """Wrap a plugin op's rules so that a rule that raises, or returns something malformed, is a
    diagnostic at the spec line that used the op (E099), never a traceback. Its shape rule also
    tries the other rules (weights, MACs, module, forward, label) on the node, so every one of
    them is known to work when ``archdsl check`` passes."""
    raw_bind, raw_shape, raw_label = inst.bind, inst.shape, inst.label
    who = f"op `{inst.name}` of plugin `{inst.plugin}`"

    def failed(rule, e):
        return f"{who} failed in its {rule}: {type(e).__name__}: {e}"

    def bind(args, kwargs):
        try:
            return raw_bind(args, kwargs)
        except BadArgument as e:
            if e.code not in CODES:
                e.code = "E020"
            raise
        except (ShapeProblem, ArchError) as e:
            raise BadArgument(getattr(e, "message", str(e)), code="E020") from None
        except Exception as e:
            raise BadArgument(failed("argument check", e), code="E099", hint=_BUG) from None

    def shape(a, xs):
        def bad(message):
            return ShapeProblem(message, hint=_BUG, code="E099")
        try:
            y = raw_shape(a, xs)
        except ShapeProblem as p:
            if p.code not in CODES:
                p.code = "E099"
            raise
        except Exception as e:
            raise bad(failed("shape rule", e)) from None
        if not isinstance(y, (tuple, list)) or not y or not all(isinstance(s, int) and not isinstance(s, bool)
                                                              for s in y):
            raise bad(f"{who} gave the shape {y!r}: a shape is a non-empty tuple of integers")
        y = tuple(y)
        if any(s <= 0 for s in y):
            return y   # the elaborator's E045 says it
        for rule, check in (("weights", _weights_ok), ("MAC count", _macs_ok), ("module rule", _module_ok),
                            ("forward code", _forward_ok)):
            try:
                problem = check(inst, a, xs, y)
            except Exception as e:
                raise bad(failed(rule, e)) from None
            if problem:
                raise bad(f"{who}: its {rule} {problem}")
        if not isinstance(label(a), str):
            raise bad(f"{who}: its label is not a string")
        return y

    def label(a):
        try:
            text = raw_label(a)
        except Exception:
            return inst.name
        return text if isinstance(text, str) else inst.name

    inst.bind, inst.shape, inst.label = bind, shape, label


def _weights_ok(inst, a, xs, y):
    w = inst.weights(a, xs, y)
    if not (isinstance(w, tuple) and len(w) == 2 and all(map(_count, w))):
        return f"gave {w!r}: weights are (parameters, buffers), two non-negative integers"


def _macs_ok(inst, a, xs, y):
    m = inst.macs(a, xs, y)
    if not _count(m):
        return f"gave {m!r}: a MAC count is a non-negative integer"


def _module_ok(inst, a, xs, y):
    spec = inst.module(a, xs, y)
    if spec is None:
        return None if inst.weights(a, xs, y) == (0, 0) else "gave None for an op with weights: it must own a module"
    if not (isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[1], tuple) and isinstance(spec[2], dict)):
        return f"gave {spec!r}: a module is (constructor, args tuple, kwargs dict)"
    ctor, args, kwargs = spec
    if not constructor_ok(inst, ctor):
        return (f"names the constructor {ctor!r}: it must be `nn.X` or reached from a module the op "
                f"imports ({', '.join(getattr(inst, 'imports', ())) or 'none declared'})")
    if not all(map(_literal, args)) or not all(isinstance(k, str) and k.isidentifier() and _literal(v)
                                               for k, v in kwargs.items()):
        return f"gave arguments {args!r}, {kwargs!r}: they must be numbers, strings, booleans, None or tuples"


def _forward_ok(inst, a, xs, y):
    mod = "self.m" if inst.module(a, xs, y) is not None else None
    text = inst.forward(a, ["x"], mod, False)
    if not isinstance(text, str):
        return f"gave {text!r}: forward code is a Python expression, as a string"
    try:
        compile(text, "<plugin forward>", "eval")
    except SyntaxError as e:
        return f"gave {text!r}, not a Python expression ({e.msg})"
