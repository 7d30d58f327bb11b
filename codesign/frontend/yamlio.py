"""Reading the YAML files a user writes (run configs, sweep files, device files).

PyYAML's safe loader silently keeps the last of two equal keys; a config that sets `seed` twice
would then train with a value the user may not have meant, so this loader refuses duplicates.
Every way a file can be unreadable ends in one UserError line naming the file and the fix.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from stage_ir.errors import UserError


class DuplicateKeyError(yaml.constructor.ConstructorError):
    def __init__(self, key: object, first_line: int, node: yaml.Node) -> None:
        super().__init__(None, None, f"key {key!r} given twice (first at line {first_line})", node.start_mark)
        self.key, self.first_line = key, first_line


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.SafeLoader that raises DuplicateKeyError for a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            # merge keys (<<) may legitimately repeat and be overridden; non-scalar keys the schema refuses anyway
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise DuplicateKeyError(key, seen[key], key_node)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, what: str, fix: str) -> object:
    """The data of a YAML file; `what` names the file's role, `fix` says how to write a good one."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {what} {path} ({err.strerror}); {fix}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}); "
                        f"the {what} must be a UTF-8 YAML file: {fix}") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except DuplicateKeyError as err:
        raise UserError(f"{path}: key {err.key!r} given twice (lines {err.first_line} and "
                        f"{err.problem_mark.line + 1}); keep one of them") from None
    except yaml.reader.ReaderError as err:
        raise UserError(f"{path}: character #x{err.character:04x} at offset {err.position} is not allowed in YAML "
                        f"(a binary file?); {fix}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(err, "problem", None) or err).split())
        raise UserError(f"{path}: malformed YAML{where}: {problem}; fix the syntax") from None
