"""Routes declared with their pydantic models: one declaration validates requests, serialises
responses and feeds the OpenAPI 3 document served at /api/v1/openapi.json.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import ApiError

API_PREFIX = "/api/v1"


@dataclass
class Operation:
    method: str
    path: str  # OpenAPI style: /boards/{board_id}
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    body_content: str = "application/json"
    response_content: str = "application/json"
    errors: tuple[int, ...] = (400, 401, 404, 422)


@dataclass
class ApiRegistry:
    operations: list[Operation] = field(default_factory=list)


REGISTRY = ApiRegistry()


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z_]+:)?([a-z_]+)>", r"{\1}", rule)


def _json_body(model: type[BaseModel]) -> BaseModel:
    if not request.is_json:
        raise ApiError(415, "send the body as JSON with Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # json.loads on thousands of nested brackets
        raise ApiError(400, "the body is nested too deeply") from None
    if data is None:
        raise ApiError(400, "the body is not valid JSON")
    return model.model_validate(data)


def _query(model: type[BaseModel]) -> BaseModel:
    args: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        args[key] = values if len(values) > 1 else values[0]
    args.pop("token", None)  # auth, not an operation parameter
    return model.model_validate(args)


def dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [dump(v) for v in value]
    return value


def route(
    bp: Blueprint,
    rule: str,
    method: str,
    *,
    summary: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    body_content: str = "application/json",
    response_content: str = "application/json",
    errors: tuple[int, ...] = (400, 401, 404, 422),
) -> Callable:
    """Register `view` on `bp`; it receives `body=` / `query=` already validated and returns a model,
    a list of models, a dict, or a Flask response."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(**kwargs):
            if body is not None:
                kwargs["body"] = _json_body(body)
            if query is not None:
                kwargs["query"] = _query(query)
            result = view(**kwargs)
            if isinstance(result, Response) or isinstance(result, tuple):
                return result
            payload = jsonify(dump(result))
            payload.status_code = status
            return payload

        endpoint = f"{view.__name__}_{method.lower()}"
        bp.add_url_rule(rule, endpoint=endpoint, view_func=wrapper, methods=[method])
        prefix = (bp.url_prefix or "").removeprefix(API_PREFIX)
        REGISTRY.operations.append(
            Operation(
                method=method.lower(),
                path=_openapi_path(prefix + rule),
                summary=summary,
                tag=bp.name,
                body=body,
                query=query,
                response=response,
                status=status,
                body_content=body_content,
                response_content=response_content,
                errors=errors,
            )
        )
        return wrapper

    return decorate


def openapi_document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered operation."""
    from .schemas import ErrorBody

    components: dict[str, Any] = {}

    def schema_of(model: Any) -> dict[str, Any]:
        adapter = TypeAdapter(model)
        schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        if isinstance(model, type) and issubclass(model, BaseModel):
            components[model.__name__] = schema
            return {"$ref": f"#/components/schemas/{model.__name__}"}
        return schema

    error_ref = schema_of(ErrorBody)
    paths: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    for op in REGISTRY.operations:
        if (op.path, op.method) in seen:
            continue
        seen.add((op.path, op.method))
        entry: dict[str, Any] = {"summary": op.summary, "tags": [op.tag], "operationId": f"{op.method}_{op.path}"}
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "integer" if name.endswith("item_id") else "string"}}
            for name in re.findall(r"{([a-z_]+)}", op.path)
        ]
        if op.query is not None:
            qschema = op.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "required": name in qschema.get("required", []), "schema": prop})
        if params:
            entry["parameters"] = params
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {op.body_content: {"schema": schema_of(op.body)}}}
        elif op.body_content != "application/json":
            entry["requestBody"] = {"required": True, "content": {op.body_content: {"schema": {"type": "object"}}}}
        responses: dict[str, Any] = {}
        if op.response is not None:
            content_schema = schema_of(op.response)
            responses[str(op.status)] = {"description": "OK", "content": {op.response_content: {"schema": content_schema}}}
        else:
            binary = {"schema": {"type": "string", "format": "binary"}}
            responses[str(op.status)] = {"description": "OK", "content": {op.response_content: binary}}
        for code in op.errors:
            responses[str(code)] = {"description": "error", "content": {"application/json": {"schema": error_ref}}}
        entry["responses"] = responses
        paths.setdefault(API_PREFIX + op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Invoke Canvas API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }


__all__ = ["route", "openapi_document", "dump", "API_PREFIX", "ValidationError"]
