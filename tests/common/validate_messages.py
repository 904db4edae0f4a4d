#!/usr/bin/env python3
"""Validates v1 messages (one JSON value per line on stdin, or from the tool given as argv[2])
against the JSON Schema in argv[1]. Exits non-zero on any invalid line or when there were none."""
import json
import subprocess
import sys

import jsonschema


def main() -> int:
    schema_path = sys.argv[1]
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator = validator_cls(schema, format_checker=jsonschema.FormatChecker())
    if len(sys.argv) > 2:
        text = subprocess.run(sys.argv[2:], check=True, capture_output=True, text=True).stdout
    else:
        text = sys.stdin.read()
    lines = [line for line in text.splitlines() if line.strip()]
    failures = 0
    for number, line in enumerate(lines, 1):
        try:
            message = json.loads(line)
        except json.JSONDecodeError as e:
            print(f"line {number}: not JSON: {e}\n  {line}")
            failures += 1
            continue
        errors = sorted(validator.iter_errors(message), key=lambda e: list(e.path))
        for e in errors:
            print(f"line {number}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message}")
        failures += bool(errors)
    # The schema must also refuse what the decoder refuses, or it documents nothing.
    if lines and failures == 0:
        sample = json.loads(lines[0])
        broken = {
            "missing target": {k: v for k, v in sample.items() if k != "target"},
            "http_status as string": {**sample, "http_status": "200"},
            "unknown error class": {**sample, "error": "bogus"},
            "schema_version 2": {**sample, "schema_version": 2},
            "timings.total null": {**sample, "timings": {**sample["timings"], "total": None}},
            "location as number": {**sample, "location": 3},
        }
        for what, message in broken.items():
            if validator.is_valid(message):
                print(f"schema accepts a message with {what}")
                failures += 1
        # location is written only when set: a message may have it or not.
        with_location = {**sample, "location": "eu-west"}
        without_location = {k: v for k, v in sample.items() if k != "location"}
        for what, message in {"a location": with_location, "no location": without_location}.items():
            if not validator.is_valid(message):
                print(f"schema refuses a message with {what}")
                failures += 1
        if not validator.is_valid({**sample, "a_field_added_later": 1}):
            print("schema refuses an unknown field; v1 must be able to grow")
            failures += 1
    print(f"{len(lines)} messages, {failures} failures")
    return 1 if failures or not lines else 0


if __name__ == "__main__":
    sys.exit(main())
