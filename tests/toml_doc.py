"""Write a config document (what tomllib.loads returns) back as TOML, for CLI tests.

Handles what :func:`worlds.config_dict` builds: scalars, arrays of scalars,
tables and arrays of tables, nested.
"""

from __future__ import annotations

import json


def dumps(doc: dict) -> str:
    """A minimal TOML writer for config documents (tables, arrays of tables, scalars)."""
    lines: list[str] = []

    def scalar(v: object) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        return repr(v)

    def table(prefix: str, d: dict, array: bool) -> None:
        lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        for k, v in d.items():
            if not isinstance(v, dict | list) or (isinstance(v, list)
                                                   and not (v and isinstance(v[0], dict))):
                lines.append(f"{k} = {scalar(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                table(f"{prefix}.{k}", v, False)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    table(f"{prefix}.{k}", item, True)

    for k, v in doc.items():
        if not isinstance(v, dict | list):
            lines.append(f"{k} = {scalar(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            table(k, v, False)
        elif isinstance(v, list):
            for item in v:
                table(k, item, True)
    return "\n".join(lines) + "\n"
