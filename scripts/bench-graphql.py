#!/usr/bin/env python3
"""graphql-core (the reference implementation's Python port) parsing, and parsing and
validating, the documents graphql-bench wrote, against the same schema: the anchor for the
GraphQL guard's analysis time. Prints one CSV line per document."""
import sys
import time

from graphql import build_schema, parse, validate

folder = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
schema = build_schema(open(f"{folder}/schema.graphql").read())
print("document,bytes,iterations,us_per_parse,us_per_parse_and_validate")
for name in ["small", "medium", "large"]:
    text = open(f"{folder}/{name}.graphql").read()
    errors = validate(schema, parse(text))
    if errors:
        sys.exit(f"{name}: graphql-core refuses it: {errors}")
    runs = max(5, iterations * 200 // max(len(text), 200))
    for _ in range(max(1, runs // 10)):
        validate(schema, parse(text))
    start = time.perf_counter()
    for _ in range(runs):
        parse(text)
    parsed = (time.perf_counter() - start) / runs * 1e6
    start = time.perf_counter()
    for _ in range(runs):
        validate(schema, parse(text))
    both = (time.perf_counter() - start) / runs * 1e6
    print(f"{name},{len(text.encode())},{runs},{parsed:.2f},{both:.2f}")
