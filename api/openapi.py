"""The OpenAPI document, generated from the pydantic models the handlers validate with.

Handlers are declared with :func:`operation`, which records the method, path, request and
response models in a registry; :func:`build_document` turns the registry into OpenAPI 3.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api.schemas import ErrorOut

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ResponseSpec = type[BaseModel] | tuple[type[BaseModel], ...] | None

ERROR_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Authentication required",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    415: "Unsupported media type",
    429: "Too many requests",
    502: "Upstream failure",
    503: "Dependency unavailable",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, ResponseSpec] = field(default_factory=dict)
    security: bool = False


@dataclass
class Registry:
    operations: list[Operation] = field(default_factory=list)
    routes: web.RouteTableDef = field(default_factory=web.RouteTableDef)

    def operation(
        self,
        method: str,
        path: str,
        *,
        name: str,
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, ResponseSpec],
        security: bool = False,
        document: bool = True,
    ) -> Callable[[Handler], Handler]:
        """Register a route and describe it; ``responses`` maps status → model (or None)."""

        def decorate(handler: Handler) -> Handler:
            self.routes.route(method, path, name=name)(handler)
            if document:
                self.operations.append(
                    Operation(method, path, name, summary, tag, body, query, responses, security)
                )
            return handler

        return decorate


REGISTRY = Registry()
operation = REGISTRY.operation


def _path_parameters(path: str) -> list[dict[str, Any]]:
    params = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            name = segment[1:-1].split(":")[0]
            params.append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
    return params


def _query_parameters(model: type[BaseModel], schema: dict[str, Any]) -> list[dict[str, Any]]:
    params = []
    for name, prop in schema.get("properties", {}).items():
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in schema.get("required", []),
                "schema": prop,
            }
        )
    return params


def build_document(registry: Registry, *, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorOut}
    for op in registry.operations:
        for spec in (op.body, *op.responses.values()):
            for candidate in spec if isinstance(spec, tuple) else (spec,):
                if candidate is not None:
                    models.add(candidate)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, definitions = models_json_schema(
        [
            (
                m,
                "validation"
                if any(m is op.body for op in registry.operations)
                else "serialization",
            )
            for m in ordered
        ],
        ref_template="#/components/schemas/{model}",
    )
    ref_of = {model: refs[(model, mode)] for (model, mode) in refs}

    paths: dict[str, dict[str, Any]] = {}
    for op in registry.operations:
        parameters = _path_parameters(op.path)
        if op.query is not None:
            query_schema = op.query.model_json_schema()
            parameters += _query_parameters(op.query, query_schema)
        documented = dict(op.responses)
        implied = [400, 415] if op.body is not None else []
        implied += [401, 403] if op.security else []
        implied += [404] if "{" in op.path else []
        implied += [400] if op.query is not None else []
        for status in implied:
            documented.setdefault(status, ErrorOut)
        responses: dict[str, Any] = {}
        for status, spec in sorted(documented.items()):
            description = "Success" if status < 400 else ERROR_DESCRIPTIONS.get(status, "Error")
            if spec is None:
                responses[str(status)] = {"description": description}
                continue
            schema = (
                {"oneOf": [ref_of[model] for model in spec]}
                if isinstance(spec, tuple)
                else ref_of[spec]
            )
            responses[str(status)] = {
                "description": description,
                "content": {"application/json": {"schema": schema}},
            }
        entry: dict[str, Any] = {
            "operationId": op.name,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref_of[op.body]}},
            }
        if op.security:
            entry["security"] = [{"session": []}, {"bearer": []}]
        paths.setdefault(op.path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "meet-coordinator API",
            "version": version,
            "description": "La Suite Meet compatible REST API (v1.0).",
        },
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "sessionid"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return dict.fromkeys(statuses, ErrorOut)
