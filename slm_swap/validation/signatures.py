"""One argument value against its declared parameter: the type and enum rules, with no schema library.

The offered signatures are BFCL's function docs: JSON-Schema-like, with BFCL's own type names beside the standard
ones (`dict` for object, `float` for number, `tuple` for array, `any`). A type this module does not know is not
checked: a signature that says nothing checkable cannot reject a value. Nested objects are checked as the top
level is (required, unknown, types) when they declare their properties; array items when the array declares them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slm_swap.formats.jsontext import is_number


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# a JSON integer is a number too (JSON Schema's rule), so `5` is a float parameter's value; `true` is neither
TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": _is_integer,
    "number": is_number,
    "float": is_number,
    "boolean": lambda value: isinstance(value, bool),
    "array": lambda value: isinstance(value, list),
    "tuple": lambda value: isinstance(value, list),
    "object": lambda value: isinstance(value, dict),
    "dict": lambda value: isinstance(value, dict),
}


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for a reason's text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if _is_integer(value):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def argument_problem(arguments: Mapping[str, Any], schema: Mapping[str, Any], path: str = "") -> tuple[str, str] | None:
    """(rule, detail) for the first argument that breaks the object schema `schema`, or None.

    Rules: `missing_required`, `unknown_parameter`, `wrong_type`, `not_in_enum`."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return None  # an object without declared properties takes any keys
    required = schema.get("required")
    for name in required if isinstance(required, list) else []:
        if name not in arguments:
            return "missing_required", f"required parameter {path}{name!r} is missing"
    for name, value in arguments.items():
        if name not in properties:
            return "unknown_parameter", f"parameter {path}{name!r} is not in the signature"
        spec = properties[name]
        found = value_problem(value, spec, f"{path}{name}") if isinstance(spec, Mapping) else None
        if found is not None:
            return found
    return None


def value_problem(value: Any, spec: Mapping[str, Any], where: str) -> tuple[str, str] | None:
    """(rule, detail) when `value` is not of the type `spec` declares, or not among its enum; None otherwise."""
    declared = spec.get("type")
    check = TYPE_CHECKS.get(declared) if isinstance(declared, str) else None
    if check is not None and not check(value):
        return "wrong_type", f"{where!r} is {json_type(value)}, declared {declared}"
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        # BFCL declares an array's allowed items as the array's own enum
        members = value if isinstance(value, list) and declared in ("array", "tuple") else [value]
        for member in members:
            if not any(json_type(member) == json_type(allowed) and member == allowed for allowed in enum):
                return "not_in_enum", f"{where!r} is {member!r}, not one of {enum!r}"
    if isinstance(value, dict) and declared in ("object", "dict"):
        return argument_problem(value, spec, f"{where}.")
    items = spec.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for index, item in enumerate(value):
            found = value_problem(item, items, f"{where}[{index}]")
            if found is not None:
                return found
    return None
