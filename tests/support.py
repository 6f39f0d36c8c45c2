"""Constants and file lists shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from planner import paths
from planner.catalog import SPECIAL_FILES

REPO = Path(__file__).resolve().parent.parent

# Variables that change Rich's idea of the terminal; cleared so table output is the pipe layout.
TERMINAL_ENV = ("FORCE_COLOR", "NO_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM")

REQUIRED_HARDWARE = ("h100-sxm", "h200-sxm", "b200", "gb200", "mi300x", "groq-lpu", "cerebras-wse3", "tpu-v6e")
REQUIRED_MODELS = (
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.3-70b", "llama-3.1-405b", "llama-2-7b", "llama-2-70b",
    "mixtral-8x7b", "qwen3-235b-a22b", "qwen3-30b-a3b", "deepseek-v3",
)

# A small scenario that is valid against the contract (required model and hardware IDs only).
SCENARIO_TOML = """\
name = "test"
description = "fixture scenario"

[model]
id = "llama-3.1-8b"

[workload]
arrival_rate_rps = 2.0
input_tokens = { median = 2000, p90 = 8000 }
output_tokens = { median = 300, p90 = 1000 }

[slo]
ttft_p95_s = 2.0
tpot_p95_ms = 50.0

[search]
hardware = ["h100-sxm", "b200"]
"""

# One accelerator with every sourced field cited; tests derive broken variants from it.
HARDWARE_TOML = """\
[sources]
ds = "Example GPU datasheet (test fixture)"
price = "Example cloud price list (test fixture)"

[[accelerator]]
id = "test-gpu"
name = "Test GPU"
vendor = "test"
kind = "gpu"
family = "hopper"
hbm_gb = 80
hbm_gbps = 3350
bf16_tflops = 989
fp8_tflops = 1979
int8_tops = "unknown"
fp4_tflops = "unsupported"
scale_up_gbps = 450
scale_up_domain = 8
scale_up_kind = "NVLink 4"
host_link_gbps = 64
host_link_kind = "PCIe Gen5 x16"
power_w = 700
usd_per_hour = 3.0
price_kind = "on-demand"
price_provider = "Example cloud"
price_date = "2025-01"

[accelerator.sources]
hbm_gb = "ds"
hbm_gbps = "ds"
bf16_tflops = "ds"
fp8_tflops = "ds"
int8_tops = "ds"
fp4_tflops = "ds"
scale_up_gbps = "ds"
scale_up_domain = "ds"
host_link_gbps = "ds"
power_w = "ds"
usd_per_hour = "price"
"""


def hardware_files() -> list[Path]:
    """Accelerator files in hardware/ (calibration and host tiers excluded)."""
    return sorted(p for p in paths.hardware_dir().glob("*.toml") if p.name not in SPECIAL_FILES)


def special_hardware_files() -> list[Path]:
    return sorted(p for p in paths.hardware_dir().glob("*.toml") if p.name in SPECIAL_FILES)


def scenario_files() -> list[Path]:
    return sorted(paths.scenarios_dir().glob("*.toml"))


def ids(files: list[Path]) -> list[str]:
    return [p.name for p in files]


def with_dotted(data: dict, updates: dict[str, object]) -> dict:
    """Set `a.b.c = value` entries on a parsed scenario (tables created as needed); returns `data`."""
    for dotted, value in updates.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


SIM_SCENARIO = """
name = "{name}"
[model]
id = "llama-3.1-8b"
[workload]
arrival_rate_rps = {rate}
[workload.input_tokens]
median = 2000
p90 = 4000
max = 8192
[workload.output_tokens]
median = 100
p90 = 200
max = 512
[workload.sessions]
turns = {turns}
prefix_reuse = {reuse}
think_time_s = 5.0
[slo]
ttft_p95_s = 2.0
tpot_p95_ms = 50.0
[speculative]
method = "none"
[search]
hardware = ["h100-sxm"]
chips = [1]
batch = [1, 8]
weight_dtype = ["bf16"]
kv_dtype = ["bf16"]
"""


def sim_scenario(rate: float, turns: int, reuse: float = 0.9, name: str = "tiny") -> str:
    """A small Llama 3.1 8B scenario (2k-token prompts, 100-token replies) for simulator tests."""
    return SIM_SCENARIO.format(rate=rate, turns=turns, reuse=reuse, name=name)


def sim_requests(inp, out, arrival, session=None, reusable=None, block=16, next_turn=None, think=None):
    """A hand-written request stream for simulator tests (sessions and closed-loop turns optional)."""
    import numpy as np

    from planner.simulate.arrivals import Requests

    n = len(inp)
    return Requests(arrival_s=np.asarray(arrival, float), input_tokens=np.asarray(inp, np.int64),
                    output_tokens=np.asarray(out, np.int64),
                    session=np.asarray(session if session is not None else [-1] * n, np.int64),
                    reusable_tokens=np.asarray(reusable if reusable is not None else [0] * n, np.int64),
                    block_tokens=block,
                    next_turn=None if next_turn is None else np.asarray(next_turn, np.int64),
                    think_s=None if think is None else np.asarray(think, float))
