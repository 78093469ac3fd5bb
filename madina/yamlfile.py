"""YAML documents parsed with libyaml's safe loader when PyYAML has it.

The seed files are large (energy's network ~170 KB, waste's containers ~100 KB): the pure-Python
``yaml.safe_load`` took 0.45-0.85 s of CPU on each, the C loader about a seventh of that, and every
service, simulator and many tests parse them at start. Both loaders build the same documents
(checked on every seed file in tests/unit/madina/test_yamlfile.py).
"""

from __future__ import annotations

from typing import Any

import yaml

_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str) -> Any:
    """The document in ``text``, as ``yaml.safe_load`` reads it."""
    return yaml.load(text, Loader=_SafeLoader)
