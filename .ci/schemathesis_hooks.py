"""Schemathesis hooks for Switchyard's streaming media types.

Client streams take NDJSON request bodies (one JSON message per line); server streams answer
NDJSON (one {"result": ...} or {"error": ...} object per line). The document gives the schema of
one line; these hooks write generated messages as lines, and check every line of a streamed
answer before handing the first one to the schema check.
"""

import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson_request(ctx, value):
    items = value if isinstance(value, list) else [value]
    return "".join(json.dumps(item) + "\n" for item in items).encode()


@schemathesis.deserializer("application/x-ndjson")
def ndjson_response(ctx, response):
    text = response.content.decode(response.encoding or "utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    for line in lines:
        if not isinstance(line, dict) or len(line) != 1 or not set(line) <= {"result", "error"}:
            raise ValueError(f"not a stream line: {line!r}")
    return lines[0] if lines else {}
