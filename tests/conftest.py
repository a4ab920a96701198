"""Shared test helpers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["ARCHDSL_LINT"] = "1"  # every elaboration in the suite also validates the IR (ArchGraph.lint)

import archdsl

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))


def checked(source, **kwargs) -> archdsl.ArchGraph:
    """archdsl.check plus the IR's invariants (every test that elaborates lints)."""
    graph = archdsl.check(source, **kwargs)
    graph.lint()
    return graph


def names(graph) -> list[str]:
    return [graph.node(n)["name"] for n in graph.nodes()]


def weight_names(graph) -> list[str]:
    """Names of the nodes that own weights or buffers (the compiled model's submodules)."""
    return [graph.node(n)["name"] for n in graph.nodes() if graph.node(n)["params"] or graph.node(n)["buffers"]]


def code_of(source, **kwargs) -> str:
    """The diagnostic code ``archdsl.check`` ends in (rendered, so rendering is exercised too), or "ok"."""
    try:
        archdsl.check(source, **kwargs)
    except archdsl.ArchError as e:
        e.render()
        return e.code
    return "ok"


def error_of(source, **kwargs) -> archdsl.ArchError:
    with pytest.raises(archdsl.ArchError) as info:
        archdsl.check(source, **kwargs)
    return info.value


def state_suffixes(d: dict) -> list[str]:
    """The state_dict entries of the torch module an IR node with weights or buffers becomes
    (a declared ``param`` / ``buffer`` is one entry, the node's own name: the suffix "")."""
    op, a = d["op"], d["attrs"]
    if op == "param":
        return [""]
    if op in ("conv", "conv_transpose", "linear"):
        return ["weight"] + (["bias"] if a["bias"] else [])
    if op in ("layernorm", "groupnorm", "layernorm_channels"):
        return ["weight", "bias"] if a["affine"] else []
    if op == "attention":
        return ["in_proj_weight"] + (["in_proj_bias"] if a["bias"] else []) + ["out_proj.weight"] + \
            (["out_proj.bias"] if a["bias"] else [])
    if op == "bn":
        return (["weight", "bias"] if a["affine"] else []) + ["running_mean", "running_var", "num_batches_tracked"]
    raise AssertionError(f"{d['name']}: no state_dict suffixes known for op `{op}`")


def state_key(d: dict, suffix: str) -> str:
    """The state_dict key of one of a node's entries: ``name.suffix``, or the name for a declared tensor."""
    return f"{d['name']}.{suffix}" if suffix else d["name"]
