"""Why hardware has no plan: the constraint that really fails, with its margin in real units.

One scenario per constraint. Expected limits are derived by hand from the catalog and the
scenario (not read back from the code under test); margins must never be sentinel numbers.
"""

from __future__ import annotations

import json
import re

import pytest
from support import with_dotted

from planner import io, paths
from planner.catalog import load_catalog
from planner.schema import Scenario
from planner.search import solve

ONE_CONFIG = {
    "hardware": ["h100-sxm"],
    "chips": [8],
    "batch": [8],
    "weight_dtype": ["fp8"],
    "kv_dtype": ["fp8"],
    "dram_fraction": [0.0],
    "nvme_fraction": [0.0],
    "spec_k": [0],
    "prefix_cache": [False],
    "attention": ["flash"],
    "serving_mode": ["aggregated"],  # one aggregated configuration: its explanations
}


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def scenario(search: dict | None = None, **updates) -> Scenario:
    data = io.read_toml(paths.scenarios_dir() / "chat.toml")
    data["search"] = dict(ONE_CONFIG, **(search or {}))
    data.pop("speculative", None)
    return io.validate(Scenario, with_dotted(data, updates), "test")


def only_miss(result) -> dict:
    assert result.best is None
    (miss,) = result.infeasible
    assert miss["margin"] is not None and 0 < miss["margin"] < 1000, miss  # never a sentinel
    excess = miss["value"] / miss["limit"] - 1
    if miss["constraint"] == "utilisation":  # a floor: the margin is how far below it
        excess = 1 - miss["value"] / miss["limit"]
    assert miss["margin"] == pytest.approx(excess, rel=1e-2, abs=1e-3)
    return miss


def test_an_unreachable_tpot_is_reported_as_tpot_not_utilisation(catalog):
    # The case: a 2 ms TPOT target. A 70B model at fp8 streams >= 70 GB per step; 8 H100s
    # read 8 x 3,350 GB/s, so one step takes at least 70 / 26,800 s = 2.6 ms: TPOT must bind.
    miss = only_miss(solve(scenario(**{"slo.tpot_p95_ms": 2.0}), catalog))
    assert miss["constraint"] == "tpot"
    assert miss["unit"] == "ms" and miss["limit"] == 2.0
    assert miss["value"] >= 70e9 / (8 * 3350e9) * 1e3
    assert miss["value"] == miss["closest"]["tpot_p95_ms"]
    assert re.search(r"TPOT p95 [\d.]+ ms at batch 8 vs 2 ms", miss["reason"]), miss["reason"]


def test_an_unreachable_ttft_is_reported_as_ttft(catalog):
    # A 1,500-token median prompt is ~2 x 70e9 x 1,500 = 2.1e14 FLOPs of prefill: at most
    # 8 x 1,979 TFLOP/s of FP8 makes that >= 13 ms, so a 1 ms TTFT cannot be met.
    miss = only_miss(solve(scenario(**{"slo.ttft_p95_s": 0.001}), catalog))
    assert miss["constraint"] == "ttft"
    assert miss["unit"] == "s" and miss["limit"] == 0.001
    assert miss["value"] >= 2 * 70e9 * 1500 / (8 * 1979e12)
    assert re.search(r"TTFT p95 [\d.]+ s at batch 8 vs 0.001 s", miss["reason"]), miss["reason"]


def test_weights_that_do_not_fit_are_reported_as_memory(catalog):
    # Llama 3.1 405B in BF16 on one H100: >= 405e9 x 2 B = 810 GB per chip; usable is
    # 80 x 2^30 B x 0.9 (the default hbm_fraction) = 77.3 GB.
    sc = scenario({"chips": [1], "weight_dtype": ["bf16"]}, **{"model.id": "llama-3.1-405b"})
    miss = only_miss(solve(sc, catalog))
    assert miss["constraint"] == "memory"
    assert miss["limit"] == pytest.approx(80 * 2**30 * 0.9 / 1e9, abs=1e-3)
    assert miss["value"] >= 810
    assert "GB per chip at batch 8 vs 77.3 GB usable" in miss["reason"]


def test_offloaded_kv_beyond_the_host_is_reported_as_host_memory(catalog):
    # All active KV in host DRAM: 512 sequences of ~100k tokens of Llama 3.1 8B KV in FP8
    # (32 layers x 8 KV heads x 128 dims x 2 x 1 B = 64 KiB per token) is ~3.4 TB per replica,
    # ~420 GB per chip on 8 chips, over the 250 GB of host DRAM the catalog gives an H100.
    sc = scenario({"batch": [512], "dram_fraction": [1.0]},
                  **{"model.id": "llama-3.1-8b", "workload.input_tokens": {"median": 100000, "max": 120000},
                     "slo.ttft_p95_s": 3000.0, "slo.tpot_p95_ms": 60000.0})
    miss = only_miss(solve(sc, catalog))
    assert miss["constraint"] == "host-memory"
    assert miss["limit"] == 250
    assert miss["value"] >= 512 * 100000 * 65536 / 8 / 1e9
    assert "of host DRAM per chip at batch 512 vs 250 GB" in miss["reason"]


def test_slos_met_only_at_zero_load_are_reported_as_utilisation(catalog):
    # First the configuration's zero-load TPOT: at a negligible arrival rate there is no queue.
    loose = scenario(**{"workload.arrival_rate_rps": 1e-6, "slo.tpot_p95_ms": 1000.0, "slo.ttft_p95_s": 100.0})
    tpot0 = solve(loose, catalog).best["tpot_p95_ms"]
    # A TPOT SLO 0.4 % above it leaves a prefill load under 1 - 1/1.004 = 0.398 % before TPOT p95 is
    # missed (the mean TPOT = step / (1 - load) alone uses that much; the spread of the stall across
    # requests takes more): under the 1 % an instance must carry, so utilisation binds.
    tight = scenario(**{"slo.tpot_p95_ms": tpot0 * 1.004, "slo.ttft_p95_s": 100.0})
    miss = only_miss(solve(tight, catalog))
    assert miss["constraint"] == "utilisation"
    assert miss["unit"] == "% prefill load" and miss["limit"] == 1.0
    assert 0.0 < miss["value"] < 100 * (1 - 1 / 1.004)
    assert "prefill load per instance at batch 8" in miss["reason"]


def test_json_margins_are_finite_and_name_their_units(invoke, tmp_path):
    path = tmp_path / "tight.toml"
    text = (paths.scenarios_dir() / "chat.toml").read_text().replace("tpot_p95_ms = 40.0", "tpot_p95_ms = 2.0")
    path.write_text(text + "\nhardware = [\"h100-sxm\", \"b200\"]\nbatch = [1, 8]\n")
    result = invoke("solve", str(path), "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.output)
    assert data["best"] is None
    for miss in data["infeasible"]:
        assert miss["constraint"] == "tpot", miss
        assert 0 < miss["margin"] < 10 and miss["unit"] == "ms" and miss["limit"] == 2.0
