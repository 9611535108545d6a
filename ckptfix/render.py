"""Rich renderings of the library's results (used by the CLI only)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .errors import cli_wording
from .report import (
    TEMPLATE_JSON,
    CheckpointReport,
    ConversionResult,
    LayerEntry,
    TensorEntry,
    VerificationResult,
)
from .survey import InspectEntry

if TYPE_CHECKING:
    from .train import EpochReport, TrainResult, TrainState


def plural(n: int, noun: str) -> str:
    """3, 'file' -> '3 files'; 1, 'file' -> '1 file'."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
    kind = "full model" if r.full_model else "weights only"
    if r.output_format == "tf-checkpoint":
        kind = "TensorFlow checkpoint: .index and .data-* files"
    t.add_row("wrote", f"{r.destination} ({kind})")
    t.add_row("template", r.template)
    t.add_row("replicas", str(r.replicas) if r.replicas is not None else "—")
    t.add_row("layers", f"{r.layers} with weights")
    t.add_row("tensors", f"{r.tensors} ({human_bytes(r.bytes)})")
    src = LAYOUT_SOURCES.get(r.layout_source, r.layout_source)
    style = "green" if r.layout == "exact" else "yellow"
    t.add_row("layout", Text(f"{r.layout} (from {src})", style=style))
    if r.full_model or r.output_format == "tf-checkpoint":
        t.add_row("optimizer", "kept" if r.optimizer_kept else "none in the source")
    t.add_row("verified", Text("every tensor matches the source", style="green"))
    t.add_row("time", f"{r.seconds:.2f} s")
    parts: list[RenderableType] = [t]
    for w in r.warnings:  # one line each, never wrapped (print with crop=False)
        parts.append(_line(f"warning: {cli_wording(w)}", "yellow"))
    return Group(*parts)


def _line(text: str, style: str) -> Text:
    """A line that stays one line (the terminal wraps it, rich does not), to be read or copied."""
    return Text(text, style=style, no_wrap=True, overflow="ignore", end="\n")


def render_verification(r: VerificationResult) -> RenderableType:
    """OK or the list of mismatches."""
    if r.ok:
        optimizer = (
            f" and {plural(r.optimizer_tensors, 'optimizer tensor')}" if r.optimizer_tensors else ""
        )
        return Text(
            f"OK: {plural(r.tensors, 'model tensor')} ({human_bytes(r.bytes)}){optimizer} match "
            f"between {r.source} and {r.destination}",
            style="green",
        )
    lines = [
        Text(
            f"MISMATCH: {plural(len(r.mismatches), 'problem')} between {r.source} and "
            f"{r.destination}",
            style="bold red",
        )
    ]
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
    "tf-checkpoint": "TensorFlow checkpoint (save_weights to a path without .h5)",
    "tf-savedmodel": "TensorFlow SavedModel (model.save to a folder)",
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
    if r.convert_command and r.layout == "inferred":
        # Last, and never wrapped, so that they can be copied as one line each. The exact
        # command first: an inferred layout cannot see a model nested inside the template.
        heading = f"fix (exact, with {TEMPLATE_JSON} the template's model.to_json()):"
        parts.append(Text(heading, style="bold"))
        parts.append(_line(f"{r.convert_command} --reference {TEMPLATE_JSON}", "bold cyan"))
        parts.append(Text("or, with the layout inferred from weight names:", style="bold"))
        parts.append(_line(r.convert_command, "bold cyan"))
    elif r.convert_command:
        # Last, and never wrapped, so that it can be copied as one line.
        parts.append(Text("fix:", style="bold"))
        parts.append(_line(r.convert_command, "bold cyan"))
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
            # A merge layer may share its name with a template layer (the output Dense):
            # say where it sits.
            layers = "layers" if len(r.merges) > 1 else "layer"
            bits.append(f"the merge {layers} {escape(_ellipsize(r.merges))}")
        head.add_row(
            "around it",
            " and ".join(bits) + ", at the top level [dim](no weights; dropped by convert)[/]",
        )
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
    if r.convert_command and r.layout == "inferred":
        head.add_row(
            "fix",
            "[bold]convert[/] with --reference for an exact layout, or without it (inferred): "
            "the commands are printed below the tree",
        )
    elif r.convert_command:
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


# --- inspect of many files ------------------------------------------------------------------

#: Short names of the formats, for one row per file.
FORMAT_SHORT = {
    "keras2-h5-weights": "Keras 2 weights",
    "keras2-h5-model": "Keras 2 model",
    "keras3-weights": "Keras 3 weights",
    "keras3-archive": "Keras 3 .keras",
}


def checkpoint_kind(r: CheckpointReport) -> str:
    """``parallel``, ``wrapped`` or ``single``."""
    return "parallel" if r.parallel else "wrapped" if r.wrapped else "single"


def render_inspect_table(entries: Sequence[InspectEntry]) -> RenderableType:
    """One row per file (a file that could not be described: its reason), and a count."""
    table = Table(box=None, pad_edge=False, show_edge=False, padding=(0, 2, 0, 0))
    for name in ("file", "format", "checkpoint", "replicas", "template", "layout", "weights"):
        table.add_column(name, no_wrap=True, justify="right" if name == "replicas" else "left")
    table.add_column("note", overflow="fold")
    kinds: dict[str, int] = {}
    for e in entries:
        r = e.report
        if r is None:
            kinds["unreadable"] = kinds.get("unreadable", 0) + 1
            table.add_row(
                escape(e.path),
                "",
                Text("error", style="red"),
                "",
                "",
                "",
                "",
                Text(f"exit {e.exit_code}: {cli_wording(e.reason or '')}", style="red"),
            )
            continue
        kind = checkpoint_kind(r)
        kinds[kind] = kinds.get(kind, 0) + 1
        style = {"parallel": "bold red", "wrapped": "bold yellow", "single": "green"}[kind]
        table.add_row(
            escape(r.path),
            FORMAT_SHORT.get(r.format, r.format),
            Text(kind, style=style),
            str(r.replicas) if r.replicas else "",
            escape(r.template or ""),
            r.layout or ("unknowable" if r.wrapped else ""),
            f"{plural(r.tensors, 'tensor')}, {human_bytes(r.bytes)}",
            Text(_row_note(r), style="yellow"),
        )
    counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
    closing = Text(
        f"{plural(len(entries), 'file')}: {counts}"
        + ("; ckptfix inspect FILE describes one in full" if entries else ""),
        style="red" if "unreadable" in kinds else "default",
    )
    return Group(table, closing)


def _row_note(r: CheckpointReport) -> str:
    if len(r.candidates) > 1 and not r.wrapped:
        return f"several nested models ({', '.join(r.candidates)}): choose with --template"
    if r.wrapped and r.layout is None:
        return "convert needs --reference"
    if r.layout == "inferred":
        return "layout inferred from weight names"
    return ""


# --- training -------------------------------------------------------------------------------


def render_epoch(report: EpochReport) -> str:
    """One line per finished epoch: its logs and the checkpoint written, if any."""
    logs = "  ".join(f"{k}={v:.4g}" for k, v in report.logs.items())
    saved = f"  -> {report.checkpoint}" if report.checkpoint else ""
    return f"epoch {report.epoch}/{report.epochs}  {logs}{saved}"


def render_training(result: TrainResult) -> list[str]:
    """What ``ckptfix train`` did, in plain lines: what was trained, written, kept, removed."""
    if result.complete:
        done = result.initial_epoch
        lines = [
            f"Already complete: the run in this folder finished {plural(done, 'epoch')}"
            + (
                f" (--epochs {result.epochs})"
                if done == result.epochs
                else f", more than --epochs {result.epochs}"
            )
            + "; nothing was trained.",
        ]
        if result.checkpoints:
            lines.append(f"Latest checkpoint: {result.checkpoints[-1]}")
        lines.append(f"To train further, run it again with --epochs above {done}.")
        return lines
    head = (
        f"Trained on {result.replicas} replica(s) ({result.strategy}, {result.keras}); "
        f"epochs {result.initial_epoch + 1}-{result.epochs}"
    )
    if result.resumed_from:
        head += f", resumed from {result.resumed_from}"
    lines = [head]
    lines += [f"Note: {note}" for note in result.notes]
    if result.removed:
        lines.append(
            f"Replaced an earlier run: removed {plural(len(result.removed), 'checkpoint')}"
            f" ({_span(result.removed)})"
        )
    earlier = [c for c in result.checkpoints if c not in result.written]
    if earlier:
        lines.append(
            f"Kept {plural(len(earlier), 'checkpoint')} of the earlier epochs ({_span(earlier)})"
        )
    if result.written:
        names = [Path(p).name for p in result.written]
        listed = ", ".join(names) if len(names) <= 5 else _span(result.written)
        folder = Path(result.written[0]).parent
        lines.append(f"Wrote {plural(len(names), 'checkpoint')} in {folder}: {listed}")
    else:
        lines.append(
            "No checkpoint written in these epochs (the monitored metric did not improve)."
        )
    return lines


def render_interrupted(
    epochs: int,
    out_dir: str,
    state: TrainState | None,
    kept: Sequence[Path],
    command: str,
) -> list[str]:
    """What an interrupted ``ckptfix train`` leaves behind, and the command that goes on."""
    files = f"{plural(len(kept), 'checkpoint')} ({_span([str(p) for p in kept])})" if kept else ""
    if state is not None:
        what = f"kept {files} and the resume state" if kept else "kept the resume state"
        ahead = [p for p in kept if _epoch_of(p) > state.epoch]  # saved, but not its state
        again = f" (resuming trains epoch {state.epoch + 1} again)" if ahead else ""
        return [
            f"Interrupted after epoch {state.epoch} of {epochs}; {what} in {out_dir}{again}.",
            f"Resume with: {command}",
        ]
    if kept:
        return [
            f"Interrupted before the first epoch's resume state was saved; {out_dir} holds "
            f"{files} but nothing to resume from.",
            f"Start again with: {command} --force",
        ]
    return [
        "Interrupted before the first epoch ended; nothing was written.",
        f"Start again with: {command}",
    ]


def _epoch_of(path: Path) -> int:
    digits = "".join(c for c in path.name.split(".")[0] if c.isdigit())
    return int(digits) if digits else 0


def _span(paths: Sequence[str]) -> str:
    names = [Path(p).name for p in paths]
    return names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"
