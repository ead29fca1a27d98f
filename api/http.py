"""Request parsing and response helpers shared by the resource modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from coordinator.errors import CoordinatorError, InvalidRequest, NotFound
from storage.records import Page

M = TypeVar("M", bound=BaseModel)
DEFAULT_PAGE_SIZE = 20
MAX_BODY_BYTES = 1024 * 1024
# Deeper bodies are refused before validation: nothing in the contract nests past a few levels,
# and validating or re-serialising a very deep value would exhaust the interpreter's stack.
MAX_JSON_DEPTH = 64
# Far beyond any real page; bounds the OFFSET the database sees (a huge one overflows BIGINT).
MAX_PAGE = 10_000_000


class UnsupportedMediaType(CoordinatorError):
    status = 415
    default_message = "Unsupported media type in request."


class MethodNotAllowed(CoordinatorError):
    status = 405


_MESSAGES = {
    "missing": "This field is required.",
    "string_type": "Not a valid string.",
    "bool_type": "Must be a valid boolean.",
    "bool_parsing": "Must be a valid boolean.",
    "int_type": "A valid integer is required.",
    "int_parsing": "A valid integer is required.",
    "uuid_type": "Must be a valid UUID.",
    "uuid_parsing": "Must be a valid UUID.",
    "list_type": "Expected a list of items.",
    "dict_type": "Expected a dictionary of items.",
    "model_type": "Expected a dictionary of items.",
    "extra_forbidden": "Unknown field.",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "string_too_long":
        return f"Ensure this field has no more than {ctx.get('max_length')} characters."
    if kind == "string_too_short":
        return (
            "This field may not be blank."
            if ctx.get("min_length") == 1
            else f"Ensure this field has at least {ctx.get('min_length')} characters."
        )
    if kind in ("literal_error", "enum"):
        return f'"{error.get("input")}" is not a valid choice.'
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    return str(error.get("msg", "Invalid value."))


def _error_detail(value: Any) -> Any:
    """A value as DRF renders it inside an error: containers kept, every leaf a string."""
    if isinstance(value, dict):
        return {key: _error_detail(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_error_detail(item) for item in value]
    return str(value)


def _schema_error(error: Mapping[str, Any]) -> dict[str, Any]:
    """One pydantic error of a nested schema field, as Meet returns ``e.errors()``."""
    detail: dict[str, Any] = {
        "type": error["type"],
        "loc": [str(part) for part in error.get("loc", ())[1:]],
        "msg": error["msg"],
        "input": _error_detail(error.get("input")),
    }
    if error.get("ctx"):
        detail["ctx"] = _error_detail(error["ctx"])
    if error.get("url"):
        detail["url"] = error["url"]
    return detail


def field_errors(
    exc: ValidationError, schema_fields: frozenset[str] = frozenset()
) -> dict[str, list[Any]]:
    """Pydantic errors as DRF-style ``{"field": ["message", ...]}``.

    Fields in ``schema_fields`` keep pydantic's own error objects instead, as Meet's do.
    """
    errors: dict[str, list[Any]] = {}
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        key = loc[0] if loc else "non_field_errors"
        if key in schema_fields:
            errors.setdefault(key, []).append(_schema_error(error))
            continue
        message = _message(error)
        if len(loc) > 1:
            message = f"{'.'.join(loc[1:])}: {message}"
        errors.setdefault(key, [])
        if message not in errors[key]:
            errors[key].append(message)
    return errors


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise InvalidRequest.fields(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {_kind(data)}."]}
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest.fields(
            field_errors(exc, getattr(model, "schema_fields", frozenset()))
        ) from None


def _kind(data: Any) -> str:
    return {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(data), "null" if data is None else type(data).__name__
    )


async def read_json(request: web.Request) -> Any:
    """The JSON body; an absent body is ``{}``. Other media types get 415."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise InvalidRequest("Request body too large.")
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidRequest("Request body too large.")
    if not raw.strip():
        return {}
    content_type = request.content_type
    if content_type not in ("application/json", "application/octet-stream") and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        raise UnsupportedMediaType(f'Unsupported media type "{content_type}" in request.')
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"JSON parse error - {exc}") from None
    except RecursionError:
        data = None  # the parser gave up on the nesting: the depth check below says so
    else:
        if _depth_within(data, MAX_JSON_DEPTH):
            return data
    raise InvalidRequest(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")


def _depth_within(data: Any, limit: int) -> bool:
    """Whether ``data`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return False
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return True


async def parse_body(request: web.Request, model: type[M]) -> M:
    return validate(model, await read_json(request))


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise InvalidRequest.fields(field_errors(exc)) from None


def page_params(request: web.Request, *, sized: bool) -> tuple[int, int]:
    """``(page, page_size)``; a bad ``page`` is 404 "Invalid page." as in DRF."""
    raw_page = request.query.get("page", "1")
    try:
        page = int(raw_page) if raw_page not in ("", "last") else 1
    except ValueError:
        raise NotFound("Invalid page.") from None
    if page < 1 or page > MAX_PAGE:
        raise NotFound("Invalid page.")
    size = DEFAULT_PAGE_SIZE
    if sized:
        try:
            size = max(1, min(100, int(request.query.get("page_size", DEFAULT_PAGE_SIZE))))
        except ValueError:
            size = DEFAULT_PAGE_SIZE
    return page, size


def paginated(
    request: web.Request, page: int, size: int, result: Page[Any], results: list[Any]
) -> dict[str, Any]:
    if page > 1 and (page - 1) * size >= result.count:
        raise NotFound("Invalid page.")
    url = request.url

    def link(number: int) -> str:
        # DRF's replace_query_param / remove_query_param: the parameters sorted by name.
        query = [(key, value) for key, value in url.query.items() if key != "page"]
        if number != 1:
            query.append(("page", str(number)))
        query.sort(key=lambda item: item[0])
        return str(url.with_query(query))

    return {
        "count": result.count,
        "next": link(page + 1) if page * size < result.count else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": results,
    }


# orjson (5-10x json.dumps) with json.dumps's results: datetimes and dataclasses through
# ``str`` like ``default=str`` gave them, non-string keys turned into strings.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)


def dump_bytes(data: Any) -> bytes:
    try:
        return orjson.dumps(data, default=str, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:  # what orjson refuses (integers past 64 bits): json's way
        return json.dumps(data, separators=(",", ":"), default=str).encode()


def dumps(data: Any) -> str:
    return dump_bytes(data).decode()


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(
        body=dump_bytes(data), status=status, content_type="application/json", charset="utf-8"
    )
