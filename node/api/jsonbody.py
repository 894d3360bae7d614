"""Parsing request bodies as JSON: every failure is a 400, never a 500.

Python's C JSON parser recurses once per nesting level and stops at the interpreter's recursion limit
(~1,000 levels) with RecursionError: 50,000 `[` used to reach the error middleware as a 500 with a
traceback in the log (issue 13, item 4). That limit is the depth limit: it is reached after at most
~1,000 bytes of input, in microseconds, so no pre-scan of the body is needed (a bracket-counting pass
in Python over a 1 MiB body would cost far more than the parse it guards). Bodies the API accepts
are two levels deep; their shape is then checked by the request models.
"""

from __future__ import annotations

import json
from typing import Any

from node.api.errors import ApiError


def parse_json(body: bytes) -> Any:
    """The parsed body; ApiError 400 malformed_json for invalid, undecodable or too deeply nested JSON."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is JSON nested too deeply "
                       "(the API accepts two levels; the parser stops near 1,000)") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
