#!/usr/bin/env python3
"""Validates the repository's config files against the JSON Schema that `webmon config-schema
--format json` prints (argv[1]: the webmon binary; argv[2:]: YAML files), and checks that the
schema refuses what the loader refuses (an unknown key, a wrong type)."""
import json
import subprocess
import sys

import jsonschema
import yaml


def main() -> int:
    out = subprocess.run([sys.argv[1], "config-schema", "--format", "json"], check=True,
                         capture_output=True, text=True).stdout
    schema = json.loads(out)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema)
    failures = 0
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        errors = list(validator.iter_errors(doc))
        for e in errors:
            print(f"{path}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}")
        failures += len(errors)
        print(f"{path}: {'valid' if not errors else 'INVALID'}")
    refused = [
        {"kafka": {"bootstrap_servers": "h:1", "topicc": "x"}, "targets": []},
        {"targets": [{"name": "a", "target": "http://h/", "check_interval_seconds": "often"}]},
        {"targets": [{"name": "a", "check_interval_seconds": 5}]},
        {"checker": {"threads": 2000}},
        {"log_format": "xml"},
    ]
    for doc in refused:
        if validator.is_valid(doc):
            print(f"the schema accepts what the loader refuses: {doc}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
