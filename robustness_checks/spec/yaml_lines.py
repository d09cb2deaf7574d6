"""Safe YAML loading that remembers the line of every mapping key and sequence item."""

from __future__ import annotations

from typing import Any

import yaml

Location = tuple[str | int, ...]


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
    """Parse `text` with yaml.SafeLoader; return the data and the line of each node."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        lines = LineMap()
        if root is None:
            return None, lines
        _record(root, (), lines)
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    return data, lines


def _record(node: yaml.Node, location: Location, lines: LineMap) -> None:
    lines.add(location, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = (*location, key_node.value)
                lines.add(child, key_node.start_mark.line + 1)
                _record(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*location, index), lines)
