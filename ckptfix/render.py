"""Rich renderings of the library's results (used by the CLI only)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .errors import cli_wording
from .report import (
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    TensorEntry,
    VerificationResult,
)


def human_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def render_conversion(r: ConversionResult) -> RenderableType:
    """A short summary of a conversion."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column()
    t.add_row("wrote", f"{r.destination} ({'full model' if r.full_model else 'weights only'})")
    t.add_row("template", r.template)
    t.add_row("replicas", str(r.replicas) if r.replicas is not None else "—")
    t.add_row("layers", f"{r.layers} with weights")
    t.add_row("tensors", f"{r.tensors} ({human_bytes(r.bytes)})")
    src = LAYOUT_SOURCES.get(r.layout_source, r.layout_source)
    style = "green" if r.layout == "exact" else "yellow"
    t.add_row("layout", Text(f"{r.layout} (from {src})", style=style))
    if r.full_model:
        t.add_row("optimizer", "kept" if r.optimizer_kept else "none in the source")
    t.add_row("verified", Text("every tensor matches the source", style="green"))
    t.add_row("time", f"{r.seconds:.2f} s")
    parts: list[RenderableType] = [t]
    for w in r.warnings:
        parts.append(Text(f"warning: {cli_wording(w)}", style="yellow"))
    return Group(*parts)


def render_verification(r: VerificationResult) -> RenderableType:
    """OK or the list of mismatches."""
    if r.ok:
        return Text(
            f"OK: {r.tensors} tensors ({human_bytes(r.bytes)}) match between "
            f"{r.source} and {r.destination}",
            style="green",
        )
    lines = [Text(f"MISMATCH: {len(r.mismatches)} problems", style="bold red")]
    lines += [Text(f"  {m}") for m in r.mismatches[:50]]
    if len(r.mismatches) > 50:
        lines.append(Text(f"  … {len(r.mismatches) - 50} more"))
    return Group(*lines)


#: Human names of the formats (``CheckpointReport.format``).
FORMAT_LABELS = {
    "keras2-h5-weights": "Keras 2 HDF5, weights only (save_weights)",
    "keras2-h5-model": "Keras 2 HDF5, full model (model.save)",
    "keras3-weights": "Keras 3 .weights.h5",
    "keras3-archive": "Keras 3 .keras archive",
}

#: Where a layout came from, in words.
LAYOUT_SOURCES = {
    "model": "the live model",
    "reference": "--reference",
    "config": "the file's own model config",
    "paths": "the file's object paths",
    "names": "weight names only",
}

#: The longest period of repeated layer blocks that the tree folds (ResNet blocks are 6-10).
MAX_PERIOD = 10
#: Rows of the tree shown before the middle is cut (``--tensors`` shows everything).
MAX_ROWS = 80


def render_report(r: CheckpointReport, tensors: bool = False) -> RenderableType:
    """Header panel (what it is, what to do) + a tree of the template's layers.

    Runs of layers built alike (same class, weight shapes and dtypes; also repeated blocks of
    up to :data:`MAX_PERIOD` layers, as in ResNets) are folded into one line, and the middle of
    a still-long tree is cut; ``tensors=True`` lists every layer and every tensor instead.
    """
    parts: list[RenderableType] = [
        Panel(_header(r), title="ckptfix inspect", title_align="left", expand=False)
    ]
    parts.append(_tree(r, tensors))
    if not tensors and _count_weights(r.layers):
        parts.append(Text("(--tensors lists every tensor with its shape and dtype)", style="dim"))
    if r.convert_command:
        # Last, and never wrapped, so that it can be copied as one line.
        parts.append(Text("fix:", style="bold"))
        parts.append(
            Text(r.convert_command, style="bold cyan", no_wrap=True, overflow="ignore", end="\n")
        )
    return Group(*parts)


def _keras3_line(r: CheckpointReport) -> str:
    k = r.keras3
    assert k is not None
    if not k.converts:
        return f"[yellow]does not convert[/]: {escape(cli_wording(k.blocker or ''))}"
    bits = ["[green]converts[/]" + (" (optimizer state kept)" if k.optimizer else "")
            + ": " + escape(k.command or "")]
    if k.custom_objects:
        bits.append(f"needs custom_objects: {escape(', '.join(k.custom_objects))}")
    return "; ".join(bits)


def _header(r: CheckpointReport) -> Table:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold", no_wrap=True)
    head.add_column(overflow="fold")
    head.add_row("file", escape(r.path))
    written = ", ".join(
        x
        for x in (
            f"Keras {r.keras_version}" if r.keras_version else None,
            f"backend {r.backend}" if r.backend else None,
        )
        if x
    )
    label = FORMAT_LABELS.get(r.format, r.format)
    head.add_row(
        "format", f"{label}" + (f" [dim]· written by {escape(written)}[/]" if written else "")
    )
    if r.parallel:
        reps = f"{r.replicas} replicas" if r.replicas else "replica count unknown"
        kind = f"[bold red]parallel[/] (multi_gpu_model, {reps})"
    elif r.wrapped:
        kind = "[bold yellow]wrapped[/]: the whole model is nested inside another"
    else:
        kind = "[bold green]single model[/]"
    head.add_row("checkpoint", kind)
    if r.template:
        head.add_row("template", f"[bold]{escape(r.template)}[/]")
    if len(r.candidates) > 1:
        head.add_row("nested models", escape(", ".join(r.candidates)))
    if r.slices or r.merges:
        bits = []
        if r.slices:
            bits.append(f"{len(r.slices)} slice layers ({escape(_ellipsize(r.slices))})")
        if r.merges:
            bits.append(f"merged by {escape(', '.join(r.merges))}")
        head.add_row("around it", "; ".join(bits) + " [dim](no weights; dropped by convert)[/]")
    dtypes = ", ".join(f"{k} ×{v}" for k, v in r.dtypes.items())
    head.add_row(
        "weights",
        f"{r.tensors:,} tensors, {r.parameters:,} parameters, {human_bytes(r.bytes)}"
        + (f" [dim]({dtypes})[/]" if dtypes else ""),
    )
    weighted = _count_weighted(r.layers)
    if weighted:
        classes = _class_counts(r.layers)
        frozen = sum(1 for layer in _walk(r.layers) if layer.trainable is False)
        line = f"{weighted} with weights"
        if classes:
            line += f" [dim]({escape(classes)})[/]"
        if frozen:
            line += f", [yellow]{frozen} frozen[/]"
        head.add_row("layers", line)
    if r.keras3 is not None:
        head.add_row("Keras 3", _keras3_line(r))
    o = r.optimizer
    if o.present:
        it = f"iterations {o.iterations:,}" if o.iterations is not None else "iterations not stored"
        head.add_row(
            "optimizer",
            f"{escape(o.class_name or 'unknown class')}: {it}, {o.slots} slot tensors "
            f"({human_bytes(o.bytes)}; not counted above)",
        )
    else:
        head.add_row("optimizer", "[dim]none stored[/]")
    if r.layout == "exact":
        head.add_row(
            "layout", f"[green]exact[/] (from {LAYOUT_SOURCES.get(r.layout_source or '', '?')})"
        )
    elif r.layout == "inferred":
        head.add_row(
            "layout", f"[yellow]inferred[/] (from {LAYOUT_SOURCES.get(r.layout_source or '', '?')})"
        )
    elif r.wrapped:
        head.add_row("layout", "[red]unknowable from this file[/]: convert needs --reference")
    if r.layout_note and (r.wrapped or r.layout is not None):
        head.add_row("why", Text(cli_wording(r.layout_note), style="yellow"))
    for note in r.notes:
        head.add_row("note", Text(cli_wording(note)))
    if r.convert_command:
        head.add_row("fix", "[bold]convert[/] with the command printed below the tree")
    elif not r.wrapped and len(r.candidates) <= 1:
        head.add_row(
            "fix",
            "[green]already single[/]: nothing to convert; load it with model.load_weights() "
            "or load_model()",
        )
    return head


def _tree(r: CheckpointReport, tensors: bool) -> Tree:
    if r.template:
        root = f"[bold]{escape(r.template)}[/] [dim](template)[/]"
    else:
        root = "[bold]model[/]"
    tree = Tree(root, guide_style="dim")
    rows = _add_layers(tree, r.layers, tensors, budget=None if tensors else MAX_ROWS)
    if not r.layers:
        tree.add("[dim]no layer holds weights[/]")
    del rows
    return tree


def _add_layers(node: Tree, layers: Sequence[LayerEntry], tensors: bool, budget: int | None) -> int:
    """Add ``layers`` under ``node`` (folded unless ``tensors``); return the rows added."""
    layers = [layer for layer in layers if layer.weights or layer.children]
    items: list[tuple[str, Any]]
    if tensors:
        items = [("layer", layer) for layer in layers]
    else:
        items = _fold(layers)
    if budget is not None and len(items) > budget:
        head, tail = budget * 3 // 4, budget // 4
        hidden = items[head : len(items) - tail]
        n_hidden = sum(1 if k == "layer" else len(v[1]) for k, v in hidden)
        items = [
            *items[:head],
            ("cut", n_hidden),
            *items[len(items) - tail :],
        ]
    rows = 0
    for kind, value in items:
        rows += 1
        if kind == "cut":
            node.add(f"[dim]⋯ {value:,} more layers (--tensors lists them all)[/]")
        elif kind == "run":
            node.add(_run_label(*value))
        else:
            layer: LayerEntry = value
            sub = node.add(_layer_label(layer))
            if layer.children:
                rows += _add_layers(sub, layer.children, tensors, budget)
            elif tensors:
                for w in layer.weights:
                    sub.add(_tensor_label(w))
                    rows += 1
    return rows


def _fold(layers: Sequence[LayerEntry]) -> list[tuple[str, Any]]:
    """Fold runs of alike layers: (``"layer"``, entry) or (``"run"``, (block, repeats))."""
    sigs = [_signature(layer) for layer in layers]
    names = [layer.name for layer in layers]
    n = len(layers)
    out: list[tuple[str, Any]] = []
    i = 0
    while i < n:
        best_p, best_reps = 1, 1
        for p in range(1, MAX_PERIOD + 1):
            if i + 2 * p > n:
                break
            reps = _repeats(sigs, i, p)
            # Fold only what saves rows: 3+ single layers, or 2+ repeats of a block.
            worth = reps >= 3 if p == 1 else reps >= 2
            if worth and p * reps > best_p * best_reps:
                best_p, best_reps = p, reps
        shift = 0
        if best_reps > 1 and best_p > 1:
            shift = _best_shift(sigs, names, i, best_p)
            best_reps = _repeats(sigs, i + shift, best_p)
        out += [("layer", layer) for layer in layers[i : i + shift]]
        i += shift
        block = layers[i : i + best_p]
        out += [("layer", layer) for layer in block]
        if best_reps > 1:
            rest = layers[i + best_p : i + best_p * best_reps]
            out.append(("run", (block, rest)))
        i += best_p * best_reps
    return out


def _best_shift(sigs: Sequence[Any], names: Sequence[str], i: int, p: int) -> int:
    """Where a repeated block of ``p`` layers found at ``i`` really starts.

    The first alike layer may sit at the end of a real block (``conv2_block1_3_bn`` before
    ``conv2_block2_1_conv``…); among the shifts that still repeat, pick the one whose layer
    names share the longest prefix.
    """

    def score(s: int) -> tuple[int, int]:
        reps = _repeats(sigs, i + s, p)
        common = len(os.path.commonprefix(list(names[i + s : i + s + p])))
        return (common if reps >= 2 else -1, reps)

    return max(range(p), key=score)


def _repeats(sigs: Sequence[Any], i: int, p: int) -> int:
    """How many times the block ``sigs[i:i+p]`` occurs back to back from ``i``."""
    n = len(sigs)
    if i + p > n:
        return 0
    reps = 1
    while i + (reps + 1) * p <= n and sigs[i + reps * p : i + (reps + 1) * p] == sigs[i : i + p]:
        reps += 1
    return reps


def _signature(layer: LayerEntry) -> tuple[Any, ...]:
    return (
        layer.class_name,
        layer.trainable,
        tuple((w.shape, w.dtype) for w in layer.weights),
        tuple(_signature(c) for c in layer.children),
    )


def _layer_label(layer: LayerEntry) -> str:
    n = sum(w.size for w in layer.weights)
    cls = f" [dim]{escape(layer.class_name)}[/]" if layer.class_name else ""
    frozen = " [yellow](frozen)[/]" if layer.trainable is False else ""
    t = "tensor" if len(layer.weights) == 1 else "tensors"
    name = escape(_short(layer.name))
    return f"{name}{cls}{frozen}  [dim]{len(layer.weights)} {t}, {n:,} params[/]"


def _run_label(block: Sequence[LayerEntry], rest: Sequence[LayerEntry]) -> str:
    params = sum(w.size for layer in rest for w in layer.weights)
    span = f"{escape(_short(rest[0].name))} … {escape(_short(rest[-1].name))}"
    if len(block) == 1:
        like = block[0]
        cls = f"{like.class_name} " if like.class_name else ""
        return (
            f"[dim]⋯ {len(rest):,} more {escape(cls)}layers like {escape(_short(like.name))}: "
            f"{span} ({params:,} params)[/]"
        )
    times = len(rest) // len(block)
    return (
        f"[dim]⋯ the {len(block)} layers above repeat {times} more "
        f"{'time' if times == 1 else 'times'}: {span} ({len(rest)} layers, {params:,} params)[/]"
    )


def _tensor_label(w: TensorEntry) -> str:
    shape = "(" + ", ".join(str(s) for s in w.shape) + ("," if len(w.shape) == 1 else "") + ")"
    unit = "param" if w.size == 1 else "params"
    return f"{escape(w.name)}  [cyan]{shape}[/] {w.dtype}  [dim]{w.size:,} {unit}[/]"


def _walk(layers: Sequence[LayerEntry]) -> Iterator[LayerEntry]:
    for layer in layers:
        yield layer
        yield from _walk(layer.children)


def _count_weighted(layers: Sequence[LayerEntry]) -> int:
    """Layers holding weights, counting a nested model's inner layers instead of the model."""
    return sum(
        _count_weighted(layer.children) if layer.children else (1 if layer.weights else 0)
        for layer in layers
    )


def _count_weights(layers: Sequence[LayerEntry]) -> int:
    return sum(len(layer.weights) for layer in layers)


def _class_counts(layers: Sequence[LayerEntry]) -> str:
    counts: dict[str, int] = {}
    for layer in _walk(layers):
        if layer.weights and not layer.children:
            if not layer.class_name:
                return ""  # a partial count would mislead
            counts[layer.class_name] = counts.get(layer.class_name, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k} {v}" for k, v in top[:6])
    return text + (", …" if len(top) > 6 else "")


def _short(name: str, limit: int = 48) -> str:
    """A long layer name cut in the middle (the folded tree only; --tensors shows it whole)."""
    if len(name) <= limit:
        return name
    keep = limit - 1
    return name[: keep * 2 // 3] + "…" + name[len(name) - (keep - keep * 2 // 3) :]


def _ellipsize(names: Sequence[str], keep: int = 2) -> str:
    if len(names) <= keep + 1:
        return ", ".join(names)
    return f"{names[0]} … {names[-1]}"
