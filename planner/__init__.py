"""planner: a capacity planner for LLM inference.

The package is layered so that data flows one way:
TOML -> pydantic schemas -> arrays -> pure JAX cost model -> search -> reports.
"""

__version__ = "0.1.0"
