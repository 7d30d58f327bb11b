"""docs/config.md, generated from the pydantic schema so that it cannot drift.

    .venv/bin/python -m codesign.frontend.config_doc > docs/config.md
"""
from __future__ import annotations

import typing

from pydantic import BaseModel

from codesign.frontend.config import Config, ConfigLayer


def _type_name(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("codesign.frontend.config.", "")
    if "LinearSpec" in text:
        return "list of layers"
    text = text.replace("<class '", "").replace("'>", "").replace("NoneType", "null")
    return text.replace(" | ", " or ").replace("Literal[", "one of [").replace("list[ExitSpec]", "list of exits")


def _rows(model: type[BaseModel], prefix: str, out: list[str], nested: list[tuple[str, type[BaseModel]]]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        inner = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((key, ann))
            continue
        default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True)).replace("|", "/")
        if inner and name not in ("backbone", "exit_head", "classifier", "head"):
            nested.append((key + "[]", inner[0]))
        desc = (field.description or "").replace("|", "/")
        out.append(f"| `{key}` | {_type_name(ann)} | {default if len(default) < 60 else '(see example)'} | {desc} |")


def render() -> str:
    lines = ["# Config reference", "",
             "Generated from the schema in `codesign/frontend/config.py` by `python -m codesign.frontend.config_doc`; every key a run",
             "config accepts. Unknown keys, a key given twice, a file that is not UTF-8 and .inf/.nan numbers are",
             "errors. See `examples/` for complete configs.", ""]
    queue: list[tuple[str, type[BaseModel]]] = [("", Config)]
    while queue:
        prefix, model = queue.pop(0)
        lines += [f"## `{prefix or 'top level'}`", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        rows: list[str] = []
        nested: list[tuple[str, type[BaseModel]]] = []
        _rows(model, f"{prefix}." if prefix else "", rows, nested)
        lines += rows + [""]
        queue += nested
    lines += ["## Layers (`model.backbone`, `model.exit_head`, `model.classifier`, `model.exits[].head`)", "",
              "Each list entry is one layer, chosen by `type`:", ""]
    for spec in typing.get_args(typing.get_args(ConfigLayer)[0]):
        kind = typing.get_args(spec.model_fields["type"].annotation)[0]
        lines += [f"### `type: {kind}`", "", (spec.__doc__ or "").strip(), "", "| key | type | default | meaning |",
                  "| --- | --- | --- | --- |"]
        rows = []
        _rows(spec, "", rows, [])
        lines += [r for r in rows if not r.startswith("| `type`")] + [""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
