"""Loads one YAML document with PyYAML (a path, or `-` for stdin) and prints it as JSON, for
the Rust tests to check: the root package has no YAML parser of its own."""
import json
import sys

import yaml

if sys.argv[1] == "-":
    document = yaml.safe_load(sys.stdin)
else:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = yaml.safe_load(f)
print(json.dumps(document))
