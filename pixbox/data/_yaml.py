"""Reading YAML files (``data.yaml``, run configs) safely: no aliases, bounded nesting (private).

``yaml.safe_load`` constructs only plain types, but it still follows aliases: a few hundred
bytes of nested ``&a [*b, *b, ...]`` anchors describe a structure with billions of leaves,
which takes minutes of CPU and gigabytes of memory as soon as anything walks it (the
"billion laughs" attack). Dataset files never need aliases, so :func:`load_yaml` refuses them
outright, and turns a ``RecursionError`` from absurdly deep nesting into a
:class:`~pixbox.data.annotations.DatasetError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from pixbox.data.annotations import DatasetError

__all__: list[str] = []


class _NoAliasLoader(yaml.SafeLoader):
    """A :class:`yaml.SafeLoader` that raises on the first alias (``*name``)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found the alias *{event.anchor}; pixbox's YAML files (datasets, configs) must not use aliases "
                "(anchors and aliases can expand to huge structures), write the values out", event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(path: Path):
    """The content of a YAML file (plain types only), or :class:`DatasetError` naming ``path``."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise DatasetError(f"cannot read YAML: {e}", path) from e
    except RecursionError:
        raise DatasetError("cannot read YAML: nested too deeply", path) from None
