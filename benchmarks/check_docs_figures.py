"""Every figure the docs quote in a results section is a value of a committed benchmark JSON.

The annotations (HTML comments, invisible when rendered) and the rules are
documented in docs/RESULTS.md, "How figures are checked". In short:

    2.19x<!-- fig: ee_vs_baseline.json:networks[0].measured_gain -->      one figure (or the last N
                                                                          figures before it, N keys)
    <!-- figures: ee_vs_baseline.json -->                                 default file for the section
    <!-- table: FILE                                                      the next table: one template
    row: | {name} | **{measured_gain}x** | {exit_fractions[*]| / } |      cell per column, one JSON
    rows: networks[*]                                                     object per table row
    -->
    <!-- results -->                                                      this section is a results one

A printed number matches a JSON value v if it equals v rounded to the printed
decimals (|printed - v| <= half a unit of the last printed digit); a number
printed with `%` is compared with 100 v (JSON fractions are 0..1), one with a
`k` / `M` multiplier with v / 1e3 / v / 1e6.

Run: .venv/bin/python benchmarks/check_docs_figures.py [DOC.md ...]   (default: docs/*.md)
Exit status 1 and one line per problem (`FILE:LINE: what`), then a summary line.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path("benchmarks") / "results"

# a number as printed: optional sign (only where it cannot be a range dash), thousands commas, decimals;
# not part of an identifier (xc7z045, 3x3, 10th, mlp_40_1024_d64); an attached x / k / M is a unit
NUMBER = re.compile(
    r"(?:(?<![\w.])(?P<sign>[+\-−]))?(?<![\w.])(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?"
    r"(?:(?P<suffix>[xkM])(?![\w])|(?![\w]))")
# what makes a number in prose a measured figure: a unit after it (after an optional k / M multiplier)
GAP = r"[ \t]*(?:\n[ \t]*)?"   # a unit may follow on the next line
UNIT = re.compile(
    GAP + r"(?:[kM]\s)?(?:%|pp\b|s\b|ms\b|min\b|h\b|samples/(?:cycle|s)\b|points/s\b|cycles?/s\b|cycles?\b"
    r"|LUTs?\b|FFs?\b|DSPs?\b|DSP48E\d\b|BRAM(?:18|36)?\b|RAMB\d+E\d\b|LUTRAMs?\b|CARRY4\b|MHz\b|ns\b"
    r"|[kMG]B\b|stall cycles\b)")
# a bound (a test's acceptance threshold, a claim about a whole table) is not a measurement
BOUND_BEFORE = re.compile(r"(?:>=|<=|≥|≤|<|>)\s*$")
RANGE_AFTER = re.compile(r"\s?[-–]\s?|\s(?:to|and|or)\s")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
RESULTS_WORDS = re.compile(r"\bmeasured\b|\bbenchmarks/", re.I)
RESULTS_HEADING = re.compile(r"\b(?:measured|results?|benchmarks?)\b", re.I)
COMMENT = re.compile(r"<!--(.*?)-->", re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PATH_PART = re.compile(r'\.?([A-Za-z_][\w-]*)|\["([^"]+)"\]|\[(-?\d+|\*)\]')


@dataclass
class Problem:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    figures: int = 0          # printed numbers compared with a JSON value
    annotations: int = 0      # fig: comments and table: blocks
    docs: int = 0
    files: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return (f"{self.figures} figures in {self.annotations} annotations checked against "
                f"{len(self.files)} benchmark JSON files over {self.docs} docs: {len(self.problems)} problems")


class AnnotationError(Exception):
    """An annotation that cannot be read or a key that does not resolve (the message says where)."""


# ---------------------------------------------------------------------------------------------- JSON access

def parse_path(path: str) -> list[str | int]:
    """`a.b[0]["x..y"][*]` -> ['a', 'b', 0, 'x..y', '*']; raises on anything left over."""
    parts: list[str | int] = []
    pos = 0
    path = path.strip()
    while pos < len(path):
        m = PATH_PART.match(path, pos)
        if not m or (m.group(0).startswith(".") and pos == 0):
            raise AnnotationError(f"cannot parse key {path!r} at {path[pos:]!r}")
        name, quoted, index = m.groups()
        parts.append(name if name is not None else quoted if quoted is not None else
                     "*" if index == "*" else int(index))
        pos = m.end()
    return parts


def lookup(doc: Any, parts: list[str | int], where: str) -> Any:
    value = doc
    for i, part in enumerate(parts):
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                raise AnnotationError(f"{where}: no index [{part}] after {fmt_path(parts[:i])}")
        elif not isinstance(value, dict) or part not in value:
            raise AnnotationError(f"{where}: no key {part!r} after {fmt_path(parts[:i]) or 'the top level'}")
        value = value[part]
    return value


def fmt_path(parts: list[str | int]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) or p == "*" else (f'["{p}"]' if "." in p else f".{p}")
    return out.lstrip(".")


class Results:
    """Benchmark JSON files, loaded once; only committed files under benchmarks/results/ count."""

    def __init__(self, root: Path, require_committed: bool = True) -> None:
        self.root = root
        self.cache: dict[str, Any] = {}
        self.tracked: set[str] | None = None
        if require_committed:
            out = subprocess.run(["git", "-C", str(root), "ls-files", "--", str(RESULTS_DIR)],
                                 capture_output=True, text=True)
            self.tracked = set(out.stdout.split()) if out.returncode == 0 else None
            if out.returncode != 0:
                raise SystemExit(f"check_docs_figures: {root} is not a git work tree (committed files "
                                 "cannot be told apart); pass --no-git to check a plain folder")

    def name(self, file: str) -> str:
        """ee_vs_baseline.json or benchmarks/results/ee_vs_baseline.json -> the latter."""
        rel = Path(file)
        if len(rel.parts) == 1:
            rel = RESULTS_DIR / rel
        if rel.parent != RESULTS_DIR or rel.suffix != ".json":
            raise AnnotationError(f"{file}: figures come from benchmarks/results/*.json only")
        return rel.as_posix()

    def load(self, file: str) -> Any:
        name = self.name(file)
        if name not in self.cache:
            if self.tracked is not None and name not in self.tracked:
                raise AnnotationError(f"{name} is not committed (git ls-files does not list it)")
            try:
                self.cache[name] = json.loads((self.root / name).read_text())
            except FileNotFoundError:
                raise AnnotationError(f"{name} does not exist") from None
        return self.cache[name]


# ---------------------------------------------------------------------------------------------- numbers

@dataclass
class Printed:
    """A number as it stands in the text."""
    start: int                # offset in the text it was found in
    end: int                  # end of the number (and its attached suffix)
    text: str                 # the number as printed (sign, digits, decimals)
    value: float
    decimals: int
    scale: float              # what the JSON value is multiplied by before comparing (100 for %)
    has_unit: bool


def multiplier(after: str, suffix: str | None = None) -> float:
    """What a number's unit does to the JSON value it is compared with: % x100, k / M x1e-3 / x1e-6."""
    mult = re.match(GAP + r"([kM])\s", after)
    if suffix == "k" or (mult and mult.group(1) == "k"):
        return 1e-3
    if suffix == "M" or (mult and mult.group(1) == "M"):
        return 1e-6
    return 100.0 if re.match(GAP + "%", after) else 1.0


def printed(text: str, after: str = "", start: int = 0, end: int | None = None, suffix: str | None = None,
            has_unit: bool = False) -> Printed:
    """`text` is one number as printed (sign, thousands commas, decimals); `after` is what follows it."""
    body = text.lstrip("+-−")
    value = float(body.replace(",", "")) * (-1 if text[:1] in ("-", "−") else 1)
    frac = body.split(".", 1)[1] if "." in body else ""
    return Printed(start, start + len(text) if end is None else end, text, value, len(frac),
                   multiplier(after, suffix), has_unit)


def numbers(text: str) -> list[Printed]:
    """Every number in `text`, with the scale its unit implies; a range (`2.19-3.16x`) shares its end's unit."""
    found: list[Printed] = []
    for m in NUMBER.finditer(text):
        start = m.start("sign") if m.group("sign") else m.start("int")
        end = m.end("frac") if m.group("frac") else m.end("int")
        suffix = m.group("suffix")
        after = text[end:]
        found.append(printed(text[start:end], after, start, m.end(), suffix,
                             bool(suffix or UNIT.match(after))))
    # a range's first number takes the unit of the number after the dash / "to"
    for a, b in zip(reversed(found[:-1]), reversed(found[1:])):
        if RANGE_AFTER.fullmatch(text[a.end:b.start]) and not a.has_unit:
            a.scale, a.has_unit = b.scale, b.has_unit
    return found


def matches(printed: Printed, value: Any) -> bool:
    """The rule: the number as printed equals the JSON value rounded to the printed decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    target = value * printed.scale
    return abs(printed.value - target) <= 0.5 * 10.0 ** -printed.decimals * (1 + 1e-9) + 1e-12 * abs(target)


def compare(printed: Printed, value: Any, key: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{printed.text!r}: {key} is {value!r}, not a number"
    if matches(printed, value):
        return None
    shown = value * printed.scale
    what = f" (x{printed.scale:g})" if printed.scale != 1 else ""
    return f"{printed.text!r} does not match {key} = {value!r}{what}: rounded to the printed digits it is " \
           f"{shown:.{printed.decimals}f}"


# ---------------------------------------------------------------------------------------------- the document

@dataclass
class Section:
    start: int                 # offset of the heading line (0 for the preamble)
    end: int
    level: int
    results: bool


@dataclass
class Doc:
    path: Path
    text: str                  # the file
    plain: str                 # the same length: comments blanked (table cells are read here)
    masked: str                # the same length: code and comments blanked (figures are searched here)
    line_starts: list[int]
    where: str = ""            # the path as problems name it

    def line(self, offset: int) -> int:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


def blank(text: str, start: int, end: int) -> str:
    return text[:start] + re.sub(r"[^\n]", " ", text[start:end]) + text[end:]


def load_doc(path: Path) -> tuple[Doc, list[re.Match]]:
    """The doc with code blocks, code spans and comments blanked, and its comments (outside code)."""
    text = path.read_text()
    masked = text
    code: list[tuple[int, int]] = []
    offset = 0
    fence: str | None = None
    fence_start = 0
    prev_blank = True
    in_indented = False
    for raw in text.splitlines(keepends=True):
        line = raw.rstrip("\n")
        stripped = line.lstrip()
        if fence is not None:
            if stripped.startswith(fence):
                code.append((fence_start, offset + len(raw)))
                fence = None
        elif stripped.startswith("```") or stripped.startswith("~~~"):
            fence, fence_start = stripped[:3], offset
        elif (line.startswith("    ") or line.startswith("\t")) and (prev_blank or in_indented) \
                and not in_indented_list_context(text, offset):
            code.append((offset, offset + len(raw)))
            in_indented = True
        elif line.strip():
            in_indented = False
        prev_blank = not line.strip()
        offset += len(raw)
    for start, end in code:
        masked = blank(masked, start, end)
    comments = [m for m in COMMENT.finditer(masked)]
    plain = text
    for m in comments:
        masked = blank(masked, m.start(), m.end())
        plain = blank(plain, m.start(), m.end())
    for m in CODE_SPAN.finditer(masked):
        masked = blank(masked, m.start(), m.end())
    starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
    return Doc(path, text, plain, masked, starts), comments


def in_indented_list_context(text: str, offset: int) -> bool:
    """An indented line right under a list item continues the item (not code)."""
    before = text[:offset].rstrip("\n").rsplit("\n", 1)[-1]
    return bool(re.match(r"\s*(?:[-*+]|\d+\.)\s", before))


def sections(doc: Doc, comments: list[re.Match]) -> list[Section]:
    """Sections by heading; results: docs/RESULTS.md, a heading naming measured/results/benchmark figures,
    a `<!-- results -->` marker inside the section, or a results parent section."""
    heads: list[tuple[int, int, str]] = [(0, 0, "")]
    for m in re.finditer(r"^(#{1,6})\s+(.*)$", doc.masked, re.M):
        heads.append((m.start(), len(m.group(1)), m.group(2)))
    out: list[Section] = []
    stack: list[Section] = []
    whole = doc.path.name == "RESULTS.md"
    for i, (start, level, title) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(doc.text)
        marked = any(start <= c.start() < end and c.group(1).strip() == "results" for c in comments)
        while stack and stack[-1].level >= level and level > 0:
            stack.pop()
        parent = stack[-1].results if stack else False
        sec = Section(start, end, level, whole or parent or marked or bool(RESULTS_HEADING.search(title)))
        out.append(sec)
        if level > 0:
            stack.append(sec)
    return out


def section_at(secs: list[Section], offset: int) -> Section:
    return next(s for s in reversed(secs) if s.start <= offset)


# ---------------------------------------------------------------------------------------------- tables

@dataclass
class Table:
    start: int                            # offset of the header line
    rows: list[tuple[int, list[str]]]     # (line offset, cells), header first, separator dropped


def split_cells(line: str) -> list[str]:
    """`| a | b |` -> ['a', 'b'] ('|' inside {} of a template does not split)."""
    cells, depth, cur = [], 0, ""
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|"):
        body = body[:-1]
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "|" and depth == 0:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
    cells.append(cur.strip())
    return cells


DELIMITER_ROW = re.compile(r"\|?(\s*:?-{3,}:?\s*\|)+\s*(:?-{3,}:?)?\s*")


def tables(doc: Doc) -> list[Table]:
    """GFM tables: `|` lines whose second line is the delimiter row (else they are paragraph text)."""
    out: list[Table] = []
    block: list[tuple[int, str]] = []
    offset = 0
    for raw in doc.masked.splitlines(keepends=True) + [""]:
        if raw.strip().startswith("|"):
            block.append((offset, raw))
        else:
            if len(block) >= 2 and DELIMITER_ROW.fullmatch(block[1][1].strip()):
                # cells from the text with code spans kept: a string cell may be code
                out.append(Table(block[0][0], [(o, split_cells(doc.plain[o:o + len(r)]))
                                               for k, (o, r) in enumerate(block) if k != 1]))
            block = []
        offset += len(raw)
    return out


@dataclass
class TableSpec:
    file: str
    header: str | None
    templates: dict[str, str]
    rows: list[tuple[str, str, str]]      # (file, base path, template name)


def parse_table_spec(body: str) -> TableSpec:
    lines = [ln.strip() for ln in body.strip().splitlines()]
    file = lines[0].split(":", 1)[1].strip()
    header, templates, rows, in_rows = None, {}, [], False
    for ln in lines[1:]:
        if not ln:
            continue
        m = re.match(r"^row(?:\s+(\w+))?:\s*(\|.*)$", ln)
        if ln.startswith("header:"):
            header, in_rows = ln.split(":", 1)[1].strip(), False
        elif m:
            templates[m.group(1) or "row"], in_rows = m.group(2), False
        elif ln.startswith("rows:") or in_rows:
            spec = ln.split(":", 1)[1].strip() if ln.startswith("rows:") else ln
            for item in filter(None, (s.strip() for s in spec.split(";"))):
                words = item.split()
                path, name = words[0], words[1] if len(words) > 1 else "row"
                row_file = file
                if ".json:" in path:
                    row_file, path = path.split(".json:", 1)
                    row_file += ".json"
                rows.append((row_file, path, name))
            in_rows = True
        else:
            raise AnnotationError(f"table annotation: cannot read line {ln!r} (header:, row [NAME]:, rows:)")
    if not templates:
        raise AnnotationError("table annotation without a `row:` template")
    return TableSpec(file, header, templates, rows)


def resolve(path: str, base: list[str | int]) -> list[str | int]:
    """A template key: absolute with a leading '/', `..` for the row base's parent, else relative."""
    if path.startswith("/"):
        return parse_path(path[1:])
    parent = list(base)
    while path.startswith(".."):   # up one key: `stages[1]` is one step
        path = path[2:].lstrip(".")
        while parent and isinstance(parent[-1], int):
            parent.pop()
        parent = parent[:-1]
    return parent + parse_path(path)


def expand_rows(results: Results, spec: TableSpec) -> list[tuple[str, list[str | int], str]]:
    out = []
    for file, path, name in spec.rows:
        parts = [] if path == "." else parse_path(path)   # `.`: the file's top level is the row
        if "*" in parts:
            i = parts.index("*")
            items = lookup(results.load(file), parts[:i], f"{file}:{path}")
            if not isinstance(items, list):
                raise AnnotationError(f"{file}:{path}: [*] over a non-list")
            out += [(file, parts[:i] + [k] + parts[i + 1:], name) for k in range(len(items))]
        else:
            out.append((file, parts, name))
    return out


def expand_cells(template: str, doc: Any, base: list[str | int], where: str) -> list[str]:
    """Template cells; a cell whose key has [*] (outside a `|SEP` join) becomes one cell per list item."""
    cells = []
    for cell in split_cells(template):
        star = [p for p in PLACEHOLDER.findall(cell) if "[*]" in p and "|" not in p]
        if not star:
            cells.append(cell)
            continue
        key = star[0]
        prefix = key[:key.index("[*]")]
        items = lookup(doc, resolve(prefix, base), where) if prefix not in ("", "/") else doc
        if not isinstance(items, list):
            raise AnnotationError(f"{where}: {prefix} is not a list")
        cells += [cell.replace("[*]", f"[{k}]") for k in range(len(items))]
    return cells


def check_cell(cell: str, template: str, doc: Any, base: list[str | int], key_prefix: str,
               report: Report) -> list[str]:
    """Match one cell against its template; problems as strings."""
    if template == "*":   # a label: text only, a number here would be an unchecked figure
        return [f"label cell {cell!r} holds a number (give it a key)"] if numbers(CODE_SPAN.sub(" ", cell)) else []
    literal_numbers = [n for n in numbers(PLACEHOLDER.sub(" ", template))]
    if literal_numbers:
        return [f"template {template!r} writes a number itself ({literal_numbers[0].text}): use a key"]
    regex, checks = "", []   # checks: (group name, key, value)
    pos = 0
    for i, m in enumerate(PLACEHOLDER.finditer(template)):
        regex += literal_regex(template[pos:m.start()])
        pos = m.end()
        key, bar, sep = m.group(1).partition("|")
        name = f"g{i}"
        if bar:   # a join: `{exits[*].exit_fraction| / }`, one value per list item, SEP between them
            if "[*]" not in key:
                return [f"{{{m.group(1)}}}: a `|SEP` join needs a [*] in its key"]
            head, tail = key.split("[*]", 1)
            items = lookup(doc, resolve(head, base), f"{key_prefix}{head}")
            if not isinstance(items, list) or not items:
                return [f"{key_prefix}{head} is not a non-empty list"]
            keys = [resolve(f"{head}[{k}]{tail}", base) for k in range(len(items))]
            value = [lookup(doc, k, f"{key_prefix}{fmt_path(k)}") for k in keys]
            item = r"[^|]*?" if any(isinstance(v, str) for v in value) else NUM_TEXT
            regex += f"(?P<{name}>{item}(?:{literal_regex(sep)}{item}){{{len(value) - 1}}})"
            checks.append((name, keys, value, sep))
        else:
            parts = resolve(key, base)
            value = lookup(doc, parts, f"{key_prefix}{fmt_path(parts)}")
            if isinstance(value, str):
                regex += re.escape(value)
            else:
                regex += f"(?P<{name}>{NUM_TEXT})"
                checks.append((name, [parts], [value], None))
    regex += literal_regex(template[pos:])
    m = re.fullmatch(regex, " ".join(cell.split()))
    if not m:
        return [f"cell {cell!r} does not have the form of {template!r} (strings must be equal)"]
    problems = []
    for name, keys, values, sep in checks:
        text = m.group(name)
        after = m.string[m.end(name):]
        pieces = [text] if sep is None else re.split(literal_regex(sep), text)
        for k, (piece, key, v) in enumerate(zip(pieces, keys, values)):
            # the unit that scales a piece is what follows it: the separator, or the cell after the last one
            follow = after if sep is None or k == len(pieces) - 1 else sep
            if isinstance(v, str):
                if piece.strip() != v:
                    problems.append(f"{piece.strip()!r} is not {key_prefix}{fmt_path(key)} = {v!r}")
                continue
            report.figures += 1
            err = compare(printed(piece.strip(), follow), v, f"{key_prefix}{fmt_path(key)}")
            if err:
                problems.append(err)
    return problems


NUM_TEXT = r"[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"


def literal_regex(text: str) -> str:
    return r"\s*".join(re.escape(w) for w in text.split(" ")) if text.strip() else (r"\s*" if text else "")


def check_table(doc: Doc, table: Table, spec: TableSpec, results: Results, report: Report) -> None:
    where = doc.where
    try:
        rows = expand_rows(results, spec)
    except AnnotationError as e:
        report.problems.append(Problem(where, doc.line(table.start), str(e)))
        return
    header_off, header = table.rows[0]
    if spec.header is not None:
        data = results.load(spec.file)
        check_row(doc, header_off, header, spec.header, data, [], f"{results.name(spec.file)}:", report)
    elif any(numbers(c) for c in header):
        report.problems.append(Problem(where, doc.line(header_off),
                                       "table header holds a number: give the annotation a `header:` template"))
    body = table.rows[1:]
    if len(body) != len(rows):
        report.problems.append(Problem(where, doc.line(table.start),
                                       f"table has {len(body)} rows, its annotation names {len(rows)}"))
    for (offset, cells), (file, base, name) in zip(body, rows):
        if name not in spec.templates:
            report.problems.append(Problem(where, doc.line(offset), f"no template named {name!r}"))
            continue
        check_row(doc, offset, cells, spec.templates[name], results.load(file), base,
                  f"{results.name(file)}:", report)


def check_row(doc: Doc, offset: int, cells: list[str], template: str, data: Any, base: list[str | int],
              key_prefix: str, report: Report) -> None:
    where = doc.where
    try:
        templates = expand_cells(template, data, base, key_prefix + fmt_path(base))
    except AnnotationError as e:
        report.problems.append(Problem(where, doc.line(offset), str(e)))
        return
    if len(templates) != len(cells):
        report.problems.append(Problem(where, doc.line(offset),
                                       f"row has {len(cells)} cells, its template {len(templates)}"))
        return
    for cell, tmpl in zip(cells, templates):
        try:
            errs = check_cell(cell, tmpl, data, base, key_prefix, report)
        except AnnotationError as e:
            errs = [str(e)]
        report.problems += [Problem(where, doc.line(offset), e) for e in errs]


# ---------------------------------------------------------------------------------------------- the check

def paragraph_start(doc: Doc, offset: int) -> int:
    """Where the text an inline annotation may bind to starts: the paragraph, or the table cell."""
    line_start = doc.text.rfind("\n", 0, offset) + 1
    if doc.text[line_start:offset].lstrip().startswith("|"):
        return doc.text.rfind("|", 0, offset) + 1
    para = doc.text.rfind("\n\n", 0, offset)
    return 0 if para < 0 else para + 2


def check_doc(path: Path, results: Results, report: Report) -> None:
    doc, comments = load_doc(path)
    doc.where = shown(path, results.root)
    first = len(report.problems)
    where = doc.where
    report.docs += 1
    secs = sections(doc, comments)
    tabs = tables(doc)
    covered: list[tuple[int, int]] = []      # spans of the masked text whose figures are checked
    annotated_tables: set[int] = set()
    defaults: dict[int, str] = {}            # section start -> default file
    referenced: set[str] = set()
    for c in comments:
        body = c.group(1).strip()
        sec = section_at(secs, c.start())
        kind = body.split(":", 1)[0].strip() if ":" in body.split("\n", 1)[0] else body
        if kind in ("fig", "figures", "table", "results") and splits_paragraph(doc, c.start()):
            report.problems.append(Problem(where, doc.line(c.start()), f"a `{kind}` comment starting a line inside "
                                           "a paragraph splits it when rendered (put it after the figure, on "
                                           "its line, or above the paragraph)"))
        try:
            if kind == "figures":
                defaults[sec.start] = body.split(":", 1)[1].strip()
                results.name(defaults[sec.start])
            elif kind == "fig":
                report.annotations += 1
                keys = body.split(":", 1)[1].split()
                start = paragraph_start(doc, c.start())
                found = numbers(doc.masked[start:c.start()])
                bound = found[max(0, len(found) - len(keys)):]
                covered += [(start + n.start, start + n.end) for n in bound]   # one problem per mistake
                if len(found) < len(keys):
                    raise AnnotationError(f"annotation names {len(keys)} keys, only {len(found)} numbers precede it")
                for printed, key in zip(bound, keys):
                    file, _, kpath = key.rpartition(":") if ".json:" in key else ("", "", key)
                    file = file or defaults.get(sec.start, "")
                    if not file:
                        raise AnnotationError(f"key {key!r} names no file and the section sets no `figures:` default")
                    referenced.add(results.name(file))
                    value = lookup(results.load(file), parse_path(kpath), f"{results.name(file)}:{kpath}")
                    report.figures += 1
                    err = compare(printed, value, f"{results.name(file)}:{kpath}")
                    if err:
                        report.problems.append(Problem(where, doc.line(c.start()), err))
            elif kind == "table":
                report.annotations += 1
                spec = parse_table_spec(body)
                nxt = next((t for t in tabs if t.start >= c.end()), None)
                if nxt is None or doc.masked[c.end():nxt.start].strip():
                    raise AnnotationError("table annotation is not followed by a table (only blank lines between)")
                annotated_tables.add(nxt.start)
                referenced |= {results.name(f) for f, _, _ in spec.rows} | {results.name(spec.file)}
                check_table(doc, nxt, spec, results, report)
        except AnnotationError as e:
            report.problems.append(Problem(where, doc.line(c.start()), str(e)))
    report.files |= referenced
    # unannotated figures: every number in a results table, every number with a unit in results prose
    paras = result_paragraphs(doc)
    for t in tabs:
        # the paragraph that introduces the table names the benchmark that wrote it
        before = len(doc.masked[:t.start].rstrip()) - 1
        lead = next((p for p in blocks(doc) if p[0] <= before < p[1]), None)
        whole = section_at(secs, t.start).results or (
            lead is not None and bool(re.search(r"\bbenchmarks/", doc.plain[lead[0]:lead[1]])))
        if t.start in annotated_tables:
            continue
        for offset, cells in t.rows:
            end = doc.masked.find("\n", offset)
            if not (whole or RESULTS_WORDS.search(doc.plain[offset:end])):
                continue
            found = [n for n in numbers(doc.masked[offset:end]) if not inside(covered, offset + n.start)]
            if found:
                report.problems.append(Problem(where, doc.line(offset),
                                               f"unannotated figure {found[0].text!r} in a results table "
                                               f"(add a `table:` annotation)"))
    table_lines = {(o, o + len(doc.masked[o:].split("\n", 1)[0])) for t in tabs for o, _ in t.rows}
    for n in numbers(doc.masked):
        if not (section_at(secs, n.start).results or inside(paras, n.start)):
            continue
        if not n.has_unit or inside(covered, n.start) or inside(table_lines, n.start):
            continue
        if BOUND_BEFORE.search(doc.masked[max(0, n.start - 4):n.start]):
            continue
        unit = UNIT.match(doc.masked, n.end)
        shown_as = " ".join(doc.masked[n.start:unit.end() if unit else n.end].split())
        report.problems.append(Problem(where, doc.line(n.start),
                                       f"unannotated figure {shown_as!r} in a results section or paragraph "
                                       f"(add `<!-- fig: FILE.json:KEY -->` after it)"))
    report.problems[first:] = sorted(report.problems[first:], key=lambda p: p.line)
    # a JSON that records its command: the doc that quotes its figures quotes that command
    flat = " ".join(doc.text.replace("\\\n", " ").split())
    for name in sorted(referenced):
        try:
            command = results.load(name).get("command") if isinstance(results.load(name), dict) else None
        except AnnotationError:
            continue
        if isinstance(command, str) and " ".join(command.split()) not in flat:
            report.problems.append(Problem(where, 1, f"{name} was written by `{command}`; the doc quotes its "
                                                     "figures but not that command"))


def shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def splits_paragraph(doc: Doc, offset: int) -> bool:
    """A comment that starts a line right under paragraph text is an HTML block: it ends the paragraph."""
    line_start = doc.text.rfind("\n", 0, offset) + 1
    if doc.text[line_start:offset].strip():
        return False
    prev = doc.text[:max(0, line_start - 1)].rsplit("\n", 1)[-1] if line_start else ""
    return bool(prev.strip()) and not HEADING.match(prev) and not prev.lstrip().startswith(("|", "<!--"))


def result_paragraphs(doc: Doc) -> list[tuple[int, int]]:
    """Prose paragraphs (not tables) that say they quote a measurement: the word measured, or a
    benchmarks/ script or JSON (code spans count: that is where paths are written)."""
    return [(a, b) for a, b in blocks(doc) if not doc.masked[a:b].lstrip().startswith("|")
            and RESULTS_WORDS.search(doc.plain[a:b])]


def blocks(doc: Doc) -> list[tuple[int, int]]:
    """Paragraphs and list items: runs of non-blank lines, a list item starting a new one."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    offset = 0
    for raw in doc.masked.splitlines(keepends=True):
        item = re.match(r"\s*(?:[-*+]|\d+\.)\s", raw)
        if not raw.strip() or item:
            if start is not None:
                out.append((start, offset))
            start = offset if item else None
        elif start is None:
            start = offset
        offset += len(raw)
    if start is not None:
        out.append((start, offset))
    return out


def inside(spans: Any, offset: int) -> bool:
    return any(a <= offset < b for a, b in spans)


def check(docs: list[Path], root: Path = ROOT, require_committed: bool = True) -> Report:
    results = Results(root, require_committed)
    report = Report()
    for path in docs:
        check_doc(path, results, report)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("docs", nargs="*", type=Path, help="markdown files (default: docs/*.md)")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository (benchmarks/results/ is under it)")
    ap.add_argument("--no-git", action="store_true", help="accept JSON files git does not track")
    args = ap.parse_args(argv)
    docs = args.docs or sorted((args.root / "docs").glob("*.md"))
    report = check(docs, args.root, not args.no_git)
    for p in report.problems:
        print(p)
    print(report.summary(), file=sys.stderr if report.problems else sys.stdout)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
