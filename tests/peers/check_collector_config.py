"""Loads otel-collector.yaml with PyYAML and prints it as JSON for the Rust test to check."""
import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    print(json.dumps(yaml.safe_load(f)))
