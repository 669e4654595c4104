"""Benchmarks as data: the registry (``registry.yaml``), the loaders that turn Hub or local rows
into problem rows, and the safe unpickler for LiveCodeBench's private tests.

A service shared by two stages: evaluation runs the benchmarks, curation decontaminates against
them. Neither stage imports the other; both import this.
"""

from __future__ import annotations

from branchmerge.benchmarks.loaders import Loaded, load_benchmark, load_problems
from branchmerge.benchmarks.registry import BenchSpec, get_spec, list_benchmarks, resolve, template_names, with_template

__all__ = ["BenchSpec", "Loaded", "get_spec", "list_benchmarks", "load_benchmark", "load_problems", "resolve",
           "template_names", "with_template"]
