"""Rich renderings of the library's results (used by the CLI only)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .report import CheckpointReport, ConversionResult, LayerEntry, VerificationResult, to_jsonable


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
    src = {
        "model": "the live model",
        "reference": "--reference",
        "config": "the file's own config",
        "names": "weight names",
    }[r.layout_source]
    style = "green" if r.layout == "exact" else "yellow"
    t.add_row("layout", Text(f"{r.layout} (from {src})", style=style))
    if r.full_model:
        t.add_row("optimizer", "kept" if r.optimizer_kept else "none in the source")
    t.add_row("verified", Text("every tensor matches the source", style="green"))
    t.add_row("time", f"{r.seconds:.2f} s")
    parts: list[RenderableType] = [t]
    for w in r.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
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


def report_json(r: CheckpointReport) -> dict[str, Any]:
    """The documented ``inspect --json`` object."""
    data: dict[str, Any] = to_jsonable(r)
    return data


def _layer_label(layer: LayerEntry) -> str:
    n = sum(w.size for w in layer.weights)
    cls = f" [dim]{layer.class_name}[/]" if layer.class_name else ""
    frozen = " [yellow](frozen)[/]" if layer.trainable is False else ""
    return f"{layer.name}{cls}{frozen}  [dim]{len(layer.weights)} tensors, {n:,} params[/]"


def render_report(r: CheckpointReport, tensors: bool = False) -> RenderableType:
    """Header panel + a tree of the template's layers."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("file", r.path)
    head.add_row("format", f"{r.format} (Keras {r.keras_version or '?'}, {r.backend or '?'})")
    if r.parallel:
        kind = f"[red]parallel[/] (multi_gpu_model): {r.replicas or '?'} replicas"
    elif r.wrapped:
        kind = "[red]wrapped[/]: a model nested in another"
    else:
        kind = "[green]single model[/]"
    head.add_row("checkpoint", kind)
    if r.template:
        head.add_row("template", r.template)
    if r.slices or r.merges:
        head.add_row("around it", f"{len(r.slices)} slice layers, merges: {', '.join(r.merges)}")
    head.add_row(
        "weights",
        f"{r.tensors} tensors, {r.parameters:,} parameters, {human_bytes(r.bytes)} "
        f"({', '.join(f'{k}: {v}' for k, v in r.dtypes.items())})",
    )
    o = r.optimizer
    head.add_row(
        "optimizer",
        "none stored"
        if not o.present
        else f"{o.class_name or '?'}: {o.slots} slot tensors, iterations {o.iterations}",
    )
    if r.layout:
        head.add_row("layout", f"{r.layout} (from {r.layout_source})")
    if r.layout_note:
        head.add_row("note", Text(r.layout_note, style="yellow"))
    head.add_row("fix", r.convert_command or "already single: nothing to convert")
    tree = Tree(f"[bold]{r.template or 'model'}[/]")
    for layer in r.layers:
        node = tree.add(_layer_label(layer))
        for child in layer.children:
            sub = node.add(_layer_label(child))
            if tensors:
                for w in child.weights:
                    sub.add(f"{w.name} {w.shape} {w.dtype}")
        if tensors and not layer.children:
            for w in layer.weights:
                node.add(f"{w.name} {w.shape} {w.dtype}")
    return Group(Panel(head, title="ckptfix inspect", expand=False), tree)
