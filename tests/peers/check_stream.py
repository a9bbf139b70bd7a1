"""Parses many expositions with prometheus_client, one long-lived process for a whole test run.

Protocol (stdin, binary): a header line `<format> <length>\\n`, `format` being `openmetrics` or
`text`, then exactly `length` bytes of UTF-8 body. For each body one JSON line on stdout:

    {"ok": true, "families": {name: [type, help, unit]},
     "samples": [[name, {label: value}, value], ...]}
    {"ok": false, "error": "<the parser's message>"}

Values that JSON cannot hold (NaN, +Inf, -Inf) are strings. Names must be legacy Prometheus
names (docs/exposition.md: every exposed name already is), so legacy validation is on: a
UTF-8 or `__`-prefixed label name is an error here, not silently accepted.
"""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.validation import enable_legacy_validation

# Beside this file; JSON cannot hold NaN or infinities, so both scripts spell them alike.
from parse_exposition import number

PARSERS = {"openmetrics": parse_om, "text": parse_text}


def check(fmt, body):
    families, samples = {}, []
    try:
        for family in PARSERS[fmt](body):
            families[family.name] = [family.type, family.documentation, family.unit]
            for s in family.samples:
                samples.append([s.name, dict(s.labels), number(s.value)])
    except Exception as err:  # the parsers raise ValueError and others; report any
        return {"ok": False, "error": f"{type(err).__name__}: {err}"}
    return {"ok": True, "families": families, "samples": samples}


def main():
    enable_legacy_validation()
    stdin, stdout = sys.stdin.buffer, sys.stdout
    while True:
        header = stdin.readline()
        if not header:
            return
        fmt, length = header.decode("ascii").split()
        raw = stdin.read(int(length))
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            answer = {"ok": False, "error": f"body is not UTF-8: {err}"}
        else:
            answer = check(fmt, body)
        stdout.write(json.dumps(answer) + "\n")
        stdout.flush()


if __name__ == "__main__":
    main()
