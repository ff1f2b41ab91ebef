"""Safe YAML for user files and CLI values: bounded size, strict UTF-8, no duplicate keys, bounded aliases.

Every problem is a one-line ``UserError`` naming the source (and the line where there is one):

- at most ``MAX_BYTES`` (1 MiB) are read;
- bytes that are not UTF-8 are refused (no silent replacement);
- a key given twice in one mapping is refused (PyYAML keeps the last one without a word);
- the document, with every alias expanded, may hold at most ``MAX_NODES`` nodes and nest ``MAX_DEPTH``
  levels deep, so an alias bomb ("billion laughs") fails at once instead of filling the memory, and a
  recursive alias is refused;
- only JSON-like values are built (mappings, lists, strings, numbers, booleans, null): dates stay strings
  and tags such as ``!!binary`` or ``!!set`` are refused.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from noisesim.errors import UserError
from noisesim.textio import read_utf8

MAX_BYTES = 1 << 20
MAX_NODES = 100_000
MAX_DEPTH = 100
MAX_SCALAR_CHARS = 10_000
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _refuse_tag(loader: yaml.BaseLoader, node: yaml.Node):
    raise yaml.constructor.ConstructorError(None, None, f"tag {node.tag} is not supported (use plain YAML values)",
                                            node.start_mark)


# YAML 1.1 reads 0x10 as 16, 1_0 as 10, 0o7 and 1:30 (base 60) as numbers, and dates as datetimes: only plain
# decimal numbers are numbers here; anything else stays a string (and the schema refuses it where a number belongs)
_LOOSE = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_DECIMAL_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_DECIMAL_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))(?:[eE][-+]?[0-9]+)?$"
                            r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")


class StrictLoader(_Base):
    """SafeLoader that refuses duplicate keys, keeps dates as strings and builds only JSON-like values."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _LOOSE]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()}
    yaml_constructors = dict(_Base.yaml_constructors)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise yaml.constructor.ConstructorError(
                        None, None, "merge keys (<<) are not supported: they can give a key twice without a word;"
                        " write each key once", key_node.start_mark)
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r} (first at line {seen[key] + 1});"
                            " a key may appear only once in a mapping: remove or rename one", key_node.start_mark)
                    seen[key] = key_node.start_mark.line
                except TypeError:
                    continue  # unhashable: the base class reports it
        return super().construct_mapping(node, deep=deep)


StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _DECIMAL_INT, list("-+0123456789"))
StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _DECIMAL_FLOAT, list("-+0123456789."))
for _tag in ("binary", "timestamp", "set", "omap", "pairs"):
    StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)
StrictLoader.add_constructor(None, _refuse_tag)  # any unknown tag


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _describe(exc: yaml.YAMLError) -> str:
    """'at line N: problem' from a PyYAML error, on one line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed"
        if exc.context and exc.problem and "duplicate key" not in exc.problem:
            problem = f"{exc.context}: {exc.problem}"
        return f"{where}: {_one_line(problem)}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f": unacceptable character #x{exc.character:04x} at position {exc.position} (remove it)"
    return f": {_one_line(exc)}"


def _check_nodes(root: yaml.Node, source: str, max_nodes: int) -> None:
    """Refuse a node graph whose alias-expanded size exceeds ``max_nodes``, that nests too deeply or that
    contains itself. Linear in the number of distinct nodes (aliases share a node)."""
    size: dict[int, int] = {}
    visiting: set[int] = set()
    stack = [(root, 0)]
    while stack:
        node, depth = stack[-1]
        key = id(node)
        if key in size:
            stack.pop()
            continue
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        if key not in visiting:
            if depth > MAX_DEPTH:
                raise UserError(f"{source}: not accepted YAML at line {node.start_mark.line + 1}: nested more than"
                                f" {MAX_DEPTH} levels deep (flatten the structure)")
            visiting.add(key)
            for child in children:
                if id(child) in visiting:
                    raise UserError(f"{source}: not accepted YAML at line {child.start_mark.line + 1}: an alias"
                                    " refers to a node that contains it (remove the recursive alias)")
                if id(child) not in size:
                    stack.append((child, depth + 1))
            continue
        stack.pop()
        visiting.discard(key)
        total = 1 + sum(size[id(child)] for child in children)
        if total > max_nodes:
            raise UserError(f"{source}: not accepted YAML at line {node.start_mark.line + 1}: more than {max_nodes:,}"
                            " values, counting each alias as a copy (an alias bomb, or far too large a file);"
                            " shorten it and do not nest aliases")
        size[key] = total


def loads_yaml(text: str, source: str = "<yaml>", max_nodes: int = MAX_NODES) -> Any:
    """The value of one YAML document in ``text`` (None when empty); UserError '<source>: …' otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"loads_yaml: text must be str, not {type(text).__name__}")
    if len(text) > MAX_BYTES:
        raise UserError(f"{source}: {len(text):,} characters is more than the {MAX_BYTES:,} accepted for YAML")
    loader = None
    try:
        loader = StrictLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, source, max_nodes)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML{_describe(exc)}") from None
    except RecursionError:
        raise UserError(f"{source}: not accepted YAML: nested too deeply (flatten the structure)") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml(path: str | Path, what: str = "YAML file", max_nodes: int = MAX_NODES) -> Any:
    """The value of the YAML file ``path`` (``what`` names it in errors, e.g. 'profile')."""
    text = read_utf8(path, what, MAX_BYTES)
    return loads_yaml(text, str(path), max_nodes)


def safe_scalar(text: str, source: str = "value") -> str | int | float | bool | None:
    """One YAML scalar from a command-line value: '1e-3' → 0.001, 'global' → 'global', 'true' → True.

    Decimal numbers in any form ('1e-3', '.5', '2E3') are floats; an empty value, a list, a mapping or a tag
    is refused. Range checks (finite, positive, …) are left to the consumer's schema.
    """
    if not isinstance(text, str):
        raise TypeError(f"safe_scalar: text must be str, not {type(text).__name__}")
    if len(text) > MAX_SCALAR_CHARS:
        raise UserError(f"{source}: a value of {len(text):,} characters is too long (at most {MAX_SCALAR_CHARS:,})")
    stripped = text.strip()
    if not stripped:
        raise UserError(f"{source}: empty value (give a number, word, true/false or null)")
    if _NUMBER.fullmatch(stripped) and not re.fullmatch(r"[-+]?[0-9]+", stripped):
        return float(stripped)
    value = loads_yaml(text, source, max_nodes=100)
    if isinstance(value, list | dict):
        raise UserError(f"{source}: {text!r} is not a single value (give a number, word, true/false or null)")
    return value


__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_NODES", "StrictLoader", "load_yaml", "loads_yaml", "safe_scalar"]
