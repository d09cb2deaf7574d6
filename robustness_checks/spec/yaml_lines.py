"""Safe YAML loading that remembers the line of every mapping key and sequence item."""

from __future__ import annotations

from typing import Any

import yaml

Location = tuple[str | int, ...]
MAX_DEPTH = 64  # nesting levels of mappings and lists; a spec needs fewer than 10
MAX_NODES = 100_000  # nodes after alias expansion; a large spec has a few thousand


class YamlLimitError(ValueError):
    """YAML that is valid but refused: too deep, too large after aliases, or a duplicate key."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class LineMap:
    """Maps a location such as ("checks", 2, "bins") to its 1-based line in the file."""

    def __init__(self) -> None:
        self._lines: dict[Location, int] = {}

    def add(self, location: Location, line: int) -> None:
        self._lines.setdefault(location, line)

    def line(self, location: Location) -> int | None:
        """The line of `location`, or of its nearest ancestor that has one."""
        location = tuple(location)
        while location:
            if location in self._lines:
                return self._lines[location]
            location = location[:-1]
        return self._lines.get((), None)


def load_yaml_with_lines(text: str) -> tuple[Any, LineMap]:
    """Parse `text` with yaml.SafeLoader; return the data and the line of each node.

    Refused with YamlLimitError, before anything is constructed: nesting deeper than MAX_DEPTH
    (a recursive alias is infinitely deep), more than MAX_NODES nodes once aliases are expanded
    (an alias bomb), and a key given twice in one mapping (YAML would keep the last silently).
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except RecursionError:
            raise YamlLimitError(
                f"the YAML is nested too deeply (over {MAX_DEPTH} levels)"
            ) from None
        lines = LineMap()
        if root is None:
            return None, lines
        _Recorder(lines).visit(root, ())
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    return data, lines


class _Recorder:
    """Walks the node graph once per path (as construction and validation will), counting."""

    def __init__(self, lines: LineMap) -> None:
        self.lines = lines
        self.nodes = 0

    def visit(self, node: yaml.Node, location: Location) -> None:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise YamlLimitError(
                f"the YAML expands to more than {MAX_NODES:,} values (through aliases such as "
                "*name); write the values out, or use fewer aliases",
                line,
            )
        if len(location) > MAX_DEPTH:
            raise YamlLimitError(
                f"the YAML is nested more than {MAX_DEPTH} levels deep (or an alias refers to "
                "itself)",
                line,
            )
        self.lines.add(location, line)
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key, key_line = key_node.value, key_node.start_mark.line + 1
                if key in seen and key != "<<":
                    raise YamlLimitError(
                        f"duplicate key {key!r} on lines {seen[key]} and {key_line}: YAML keeps "
                        "only the last; remove or rename one",
                        key_line,
                    )
                seen[key] = key_line
                child = (*location, key)
                self.lines.add(child, key_line)
                self.visit(value_node, child)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.visit(item, (*location, index))
