"""Reading params.yaml and `--set` values: plain YAML, no duplicate keys, bounded expansion.

PyYAML's safe loader keeps the last of two equal keys (a second `tune:` section replaced the first
whole), expands aliases without limit (a 750-byte alias bomb became a 34 MB error message) and reads
`1e-3` as a string (YAML 1.1). This loader refuses the first two, naming the key and its lines,
and reads exponent floats as YAML 1.2 does.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tunedag.errors import ConfigError

MAX_BYTES = 16 * 1024 * 1024  # a params file larger than this is not a config
MAX_NODES = 2_000_000  # values after aliases are expanded: a 6,000-configuration enqueue is about 100,000
MAX_ALIASES = 10_000
_MERGE = "tag:yaml.org,2002:merge"
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and counts aliases; `source` names the file or `--set` in messages."""

    source = "params.yaml"

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases = getattr(self, "aliases", 0) + 1
            if self.aliases > MAX_ALIASES:
                raise ConfigError(f"{self.source} uses more than {MAX_ALIASES} YAML aliases (*name); refused")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{self.source}: key {key!r} appears twice in one section (lines {seen[key]} and {line}); "
                    "YAML would keep only the second; merge them into one"
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789"))


def load_yaml_text(text: str, source: str) -> Any:
    """Parse `text` (from `source`, a file or `--set KEY=VALUE`) as plain YAML; ConfigError naming `source` if it is not.

    Refused: Python tags and other non-standard tags, duplicate keys, more than MAX_ALIASES aliases,
    and a document whose aliases expand to more than MAX_NODES values.
    """
    loader = _Loader(text)
    loader.source = source
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise ConfigError(f"{source}: its YAML aliases expand to more than {MAX_NODES} values; refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        detail = str(exc).replace('in "<unicode string>", ', "")
        raise ConfigError(f"{source} is not valid YAML (only plain YAML is read, no Python tags): {detail}") from None
    except RecursionError:
        raise ConfigError(f"{source} nests its YAML too deeply; refused") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values `node` stands for once every alias is copied out (shared nodes counted each time they appear)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = MAX_NODES + 1  # a node inside itself (a recursive alias) expands without end
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    else:
        size = 1
    memo[id(node)] = size
    return size
