"""Test kit: references and injectors only tests and benchmarks use (row-wise code, pycocotools references,
fault injectors, completion generators, the 10M-sample builder)."""
