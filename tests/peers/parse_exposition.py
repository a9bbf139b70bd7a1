"""Parses an exposition from stdin with prometheus_client and prints its samples as JSON.

Usage: parse_exposition.py text|openmetrics

Output: {"families": {name: type}, "samples": [[name, {label: value}, value], ...]}
Values that JSON cannot hold (NaN, +Inf, -Inf) are printed as strings. A parse error exits 1
with the parser's message on stderr.
"""

import json
import math
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text


def number(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return value


def main():
    fmt = sys.argv[1]
    parse = {"text": parse_text, "openmetrics": parse_om}[fmt]
    body = sys.stdin.read()
    families, samples = {}, []
    try:
        for family in parse(body):
            families[family.name] = family.type
            for s in family.samples:
                entry = [s.name, dict(s.labels), number(s.value)]
                if getattr(s, "exemplar", None):
                    ts = s.exemplar.timestamp
                    entry.append({"labels": dict(s.exemplar.labels), "value": s.exemplar.value,
                                  "timestamp": None if ts is None else float(ts)})
                samples.append(entry)
    except Exception as err:  # the parser raises ValueError and others; report any
        print(f"parse error: {err}", file=sys.stderr)
        sys.exit(1)
    json.dump({"families": families, "samples": samples}, sys.stdout)


if __name__ == "__main__":
    main()
