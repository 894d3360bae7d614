"""API errors: one exception type carrying (status, code, message), rendered as
`{"error": {"code", "message"}}` by the error middleware. Handlers raise, never build error JSON."""

from __future__ import annotations

from aiohttp import web

from node.api.models import ErrorDetail, ErrorResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


# aiohttp's own HTTP exceptions (no route, wrong method, body too large) mapped to stable codes.
HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "body_timeout",
    413: "body_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


def error_response(status: int, code: str, message: str, *, retry_after: str | None = None) -> web.Response:
    body = ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump_json()
    resp = web.Response(status=status, text=body, content_type="application/json")
    if retry_after is not None:
        resp.headers["Retry-After"] = retry_after
    return resp
