"""Validate emulator responses against the vendors' OpenAPI files.

Why relaxed: the live services send ``null`` where the files forget ``nullable``
and keys the files do not list (see shared/api/EMULATOR.md).  So before
validating, every property schema is made nullable and ``additionalProperties``
is allowed everywhere; ``required``, types, names and envelopes are kept.

Shared by the KeyCRM and the Bimp contract tests.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, OAS31Validator

__all__ = ["load_spec", "response_schema", "shared_api_dir", "validate_response"]

_SPEC_FILES = {
    "keycrm": "keycrm-openapi.yml",
    "bimp": "bimp-openapi.json",
}


def shared_api_dir() -> Path:
    """The vendors' OpenAPI files and the live samples, vendored in ``vendor_api/`` beside this module (a fresh
    clone has nothing outside the repository); KEYBIMP_SHARED_DIR points the tests at another copy (a newer
    download of the vendors' files) without editing the repository."""
    override = os.environ.get("KEYBIMP_SHARED_DIR")
    if override:
        base = Path(override)
        return base / "api" if (base / "api").is_dir() else base
    return Path(__file__).resolve().parent / "vendor_api"


@lru_cache(maxsize=8)
def _load_spec_cached(path: str) -> dict:
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        return json.loads(text)
    return yaml.safe_load(text)


def load_spec(name: str) -> dict:
    """Load a vendor spec by short name ("keycrm", "bimp") or file name; cached per process.

    The returned dict is shared: do not mutate it.
    """
    file_name = _SPEC_FILES.get(name, name)
    return _load_spec_cached(str(shared_api_dir() / file_name))


def _resolve_pointer(spec: dict, ref: str) -> Any:
    if not ref.startswith("#/"):
        raise AssertionError(f"only local $refs are supported, got {ref!r}")
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[part]
    return node


def _inline_refs(spec: dict, node: Any, stack: tuple[str, ...] = ()) -> Any:
    """Return a copy of ``node`` with local $refs inlined (recursive refs become ``{}``)."""
    if isinstance(node, dict):
        if "$ref" in node and isinstance(node["$ref"], str):
            ref = node["$ref"]
            if ref in stack:
                return {}
            target = _resolve_pointer(spec, ref)
            merged = _inline_refs(spec, target, stack + (ref,))
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if siblings and isinstance(merged, dict):
                merged = {**merged, **_inline_refs(spec, siblings, stack)}
            return merged
        return {k: _inline_refs(spec, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(spec, v, stack) for v in node]
    return node


_SCHEMA_CHILD_KEYS = ("items", "not", "additionalProperties")
_SCHEMA_LIST_KEYS = ("allOf", "anyOf", "oneOf", "prefixItems")


def _make_nullable(schema: dict, oas31: bool) -> dict:
    if oas31:
        t = schema.get("type")
        if isinstance(t, str):
            if t != "null":
                schema["type"] = [t, "null"]
        elif isinstance(t, list):
            if "null" not in t:
                schema["type"] = [*t, "null"]
        elif any(k in schema for k in ("anyOf", "oneOf")):
            key = "anyOf" if "anyOf" in schema else "oneOf"
            if not any(isinstance(s, dict) and s.get("type") == "null" for s in schema[key]):
                schema[key] = [*schema[key], {"type": "null"}]
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
    else:
        schema["nullable"] = True
        if "enum" in schema and None not in schema["enum"]:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _relax(schema: Any, oas31: bool, nullable: bool = False) -> Any:
    """Make every property nullable and allow extra keys, keeping ``required``."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out and isinstance(out["properties"], dict):
        out["properties"] = {k: _relax(v, oas31, nullable=True) for k, v in out["properties"].items()}
    if out.get("additionalProperties") is False or isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = True
    if "items" in out:
        out["items"] = _relax(out["items"], oas31, nullable=True)
    for key in _SCHEMA_LIST_KEYS:
        if key in out and isinstance(out[key], list):
            out[key] = [_relax(s, oas31, nullable=False) for s in out[key]]
    if "not" in out:
        out["not"] = _relax(out["not"], oas31)
    if out.get("type") == "object" or "properties" in out:
        out.pop("unevaluatedProperties", None)
    if nullable:
        out = _make_nullable(out, oas31)
    return out


def _find_operation(spec: dict, path_template: str, method: str) -> dict:
    paths = spec.get("paths") or {}
    item = paths.get(path_template)
    if item is None:
        # tolerate a leading server prefix such as /v1
        for prefix in ("/v1",):
            if path_template.startswith(prefix):
                item = paths.get(path_template[len(prefix):])
                if item is not None:
                    break
    if item is None:
        raise AssertionError(f"path {path_template!r} is not in the spec")
    if "$ref" in item:
        item = _resolve_pointer(spec, item["$ref"])
    op = item.get(method.lower())
    if op is None:
        raise AssertionError(f"{method.upper()} {path_template} is not in the spec")
    return op


def response_schema(spec: dict, path_template: str, method: str, status: int) -> dict | None:
    """The relaxed, ref-inlined JSON schema of a documented response, or None where the file has none."""
    op = _find_operation(spec, path_template, method)
    responses = op.get("responses") or {}
    resp = responses.get(str(status), responses.get(status))
    if resp is None:
        resp = responses.get(f"{str(status)[0]}XX") or responses.get("default")
    if resp is None:
        raise AssertionError(
            f"{method.upper()} {path_template}: status {status} is not documented "
            f"(documented: {sorted(str(k) for k in responses)})"
        )
    if "$ref" in resp:
        resp = _resolve_pointer(spec, resp["$ref"])
    content = resp.get("content") or {}
    media = content.get("application/json") or next(iter(content.values()), None) if content else None
    if not media or "schema" not in media:
        return None
    oas31 = str(spec.get("openapi", "3.0")).startswith("3.1")
    schema = _inline_refs(spec, copy.deepcopy(media["schema"]))
    return _relax(schema, oas31)


def validate_response(spec: dict, path_template: str, method: str, status: int, body: Any) -> None:
    """Assert ``body`` matches the documented response schema (relaxed); quiet when none is documented.

    Raises AssertionError naming the operation, the failing JSON path and the reason.
    """
    schema = response_schema(spec, path_template, method, status)
    if schema is None:
        return
    oas31 = str(spec.get("openapi", "3.0")).startswith("3.1")
    validator_cls = OAS31Validator if oas31 else OAS30Validator
    validator = validator_cls(schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "<root>"
            lines.append(f"  at {where}: {err.message[:300]}")
        more = f"\n  ... and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise AssertionError(
            f"{method.upper()} {path_template} {status}: response does not match the vendor schema:\n"
            + "\n".join(lines)
            + more
        )
