"""`planner solve --emit`: every flag exists in the named engine version; unsupported settings are said.

The flag lists below are pinned from the engines' own argument definitions:
- vLLM 0.19.1: `vllm/engine/arg_utils.py` of the vllm-0.19.1 wheel (`add_argument("--...")`; bool
  fields also get `--no-<name>` through argparse.BooleanOptionalAction), `vllm/config/cache.py`
  (CacheDType, KVOffloadingBackend), `vllm/config/speculative.py` (SpeculativeMethod).
- SGLang 0.5.23: `sglang/srt/arg_groups/fields/*.py` of the sglang-0.5.23 wheel (each field is a
  flag, `--` + name with dashes: `arg_groups/arg_utils.py`).
- TensorRT-LLM 1.0 trtllm-serve: recalled from its documentation, not read from a package (the
  wheel is not on PyPI in a form this project can read); emit() says so in its header.
"""

from __future__ import annotations

import json
import re

import pytest

from planner import io, paths
from planner.catalog import load_catalog
from planner.launch import ENGINES, Launch, emit
from planner.plans import layout
from planner.schema import Scenario

VLLM_0_19_1 = {
    "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size", "--enable-expert-parallel",
    "--decode-context-parallel-size", "--max-num-seqs", "--max-num-batched-tokens", "--max-model-len",
    "--gpu-memory-utilization", "--quantization", "--kv-cache-dtype", "--enable-prefix-caching",
    "--no-enable-prefix-caching", "--speculative-config", "--kv-offloading-backend", "--kv-offloading-size",
}
VLLM_KV_DTYPES = {"auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"}
SGLANG_0_5_23 = {
    "--model-path", "--tp-size", "--pp-size", "--dp-size", "--enable-dp-attention", "--ep-size", "--attn-cp-size",
    "--max-running-requests", "--chunked-prefill-size", "--context-length", "--mem-fraction-static",
    "--quantization", "--kv-cache-dtype", "--disable-radix-cache", "--speculative-algorithm",
    "--speculative-draft-model-path", "--speculative-num-steps", "--speculative-eagle-topk",
    "--speculative-num-draft-tokens", "--enable-hierarchical-cache", "--hicache-size", "--hicache-storage-backend",
}
TRTLLM_1_0 = {"--backend", "--tp_size", "--pp_size", "--ep_size", "--max_batch_size", "--max_num_tokens",
              "--max_seq_len", "--extra_llm_api_options"}
PINNED = {"vllm": ("0.19.1", VLLM_0_19_1), "sglang": ("0.5.23", SGLANG_0_5_23), "trtllm": ("1.0", TRTLLM_1_0)}


def plan(**changes) -> dict:
    base = {"hardware": "h100-sxm", "chips": 8, "replicas": 3, "batch": 32, "weight_dtype": "fp8", "kv_dtype": "fp8",
            "tier_split": {"hbm": 1.0, "dram": 0.0, "nvme": 0.0}, "spec_k": 4, "prefix_cache": True,
            "quality_note": None,
            "memory_gb_per_chip": {"weights": 9.0, "kv_hbm": 50.0, "activations": 2.0, "usable_hbm": 77.3,
                                   "kv_dram": 0.0, "kv_nvme": 0.0, "prefix_cache": 5.0}}
    base.update(changes)
    return base


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    """The bundled agentic scenario on Llama 3.3 70B with a Llama 3.2 1B draft (the plans below)."""
    data = io.read_toml(paths.default_scenario())
    data["model"]["id"] = "llama-3.3-70b"
    data["speculative"] = {**data.get("speculative", {}), "method": "draft", "draft_model": "llama-3.2-1b"}
    return io.validate(Scenario, data, "agentic-coding on llama-3.3-70b")


def launch(catalog, scenario, p: dict) -> Launch:
    model = catalog.model(scenario.model.id)
    domain = int(catalog.accelerator(p["hardware"]).scale_up_domain)
    return Launch(plan=p, scenario=scenario, model=model, draft=catalog.model("llama-3.2-1b"),
                  layout=layout(p, model, domain))


def flags(text: str) -> set[str]:
    commands = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*", commands))


PLANS = [
    plan(),
    plan(kv_dtype="int4", weight_dtype="int4", quality_note="4-bit weights and KV cache: accuracy not modelled"),
    plan(kv_dtype="bf16", weight_dtype="bf16", spec_k=0, prefix_cache=False),
    plan(tier_split={"hbm": 0.75, "dram": 0.25, "nvme": 0.0},
         memory_gb_per_chip={"weights": 9.0, "kv_hbm": 50.0, "activations": 2.0, "usable_hbm": 77.3,
                             "kv_dram": 16.0, "kv_nvme": 0.0, "prefix_cache": 40.0}),
    plan(layout={"tp": 4, "pp": 1, "ep": 8, "dp_attention": 2, "cp": 2, "replicas_per_system": 1, "nodes": 1}),
]


@pytest.mark.parametrize("engine", sorted(PINNED))
@pytest.mark.parametrize("index", range(len(PLANS)))
def test_every_emitted_flag_exists_in_the_pinned_engine_version(catalog, scenario, engine, index) -> None:
    version, known = PINNED[engine]
    assert ENGINES[engine].version == version
    text = emit(engine, launch(catalog, scenario, PLANS[index]))
    assert flags(text) <= known, flags(text) - known
    assert f"{ENGINES[engine].name} {version}" in text


def test_vllm_command_carries_the_plan(catalog, scenario) -> None:
    text = emit("vllm", launch(catalog, scenario, plan()))
    # Llama 3.3 70B has 8 KV heads: tp = min(8 chips, domain 8, clip(8, 8, 16)) = 8, pp = 1
    assert "vllm serve meta-llama/Llama-3.3-70B-Instruct" in text
    assert "--tensor-parallel-size 8" in text and "--pipeline-parallel-size 1" in text
    assert "--max-num-seqs 32" in text and "--kv-cache-dtype fp8" in text and "--quantization fp8" in text
    assert "--max-model-len 131072" in text  # prompt cap 126,976 + output cap 4,096
    spec = json.loads(re.search(r"--speculative-config '(.*)'", text).group(1))
    assert spec == {"method": "draft_model", "model": "meta-llama/Llama-3.2-1B", "num_speculative_tokens": 4}


def test_settings_without_a_flag_are_said_not_invented(catalog, scenario) -> None:
    text = emit("vllm", launch(catalog, scenario, PLANS[1]))
    assert "--kv-cache-dtype" not in text
    assert "# note: KV int4: vLLM 0.19.1 has no int4 KV-cache dtype" in text
    assert "pre-quantized int4 (AWQ/GPTQ) checkpoint" in text
    assert "# note: 4-bit weights and KV cache: accuracy not modelled" in text
    sglang = emit("sglang", launch(catalog, scenario, PLANS[1]))
    assert "--kv-cache-dtype" not in flags(sglang) and "no int4 KV cache" in sglang


def test_kv_offload_maps_to_each_engines_host_cache(catalog, scenario) -> None:
    p = PLANS[3]
    # host KV per chip: 16 GB active on DRAM + prefix cache spill 40 - (77.3 - 9 - 50 - 2) = 23.7 GB
    vllm = emit("vllm", launch(catalog, scenario, p))
    assert "--kv-offloading-backend lmcache" in vllm
    assert f"--kv-offloading-size {(16 + 23.7) * 8 * 1e9 / 2**30:.0f}" in vllm  # GiB over 8 TP ranks
    assert "*active* KV in DRAM/NVMe, which no engine flag does" in vllm
    assert "--enable-hierarchical-cache" in emit("sglang", launch(catalog, scenario, p))
    assert f"host_cache_size: {int((16 + 23.7) * 1e9)}" in emit("trtllm", launch(catalog, scenario, p))


def test_a_plan_layout_object_is_read_as_is(catalog, scenario) -> None:
    sg = emit("sglang", launch(catalog, scenario, PLANS[4]))
    assert "--tp-size 4" in sg and "--ep-size 8" in sg and "--dp-size 2" in sg and "--attn-cp-size 2" in sg
    assert "--enable-dp-attention" in sg
    trt = emit("trtllm", launch(catalog, scenario, PLANS[4]))
    assert "enable_attention_dp: true" in trt and "context parallelism 2: not set here" in trt


def test_solve_emit_prints_the_launch_of_the_chosen_plan(invoke) -> None:
    path = paths.scenarios_dir() / "chat.toml"
    table = json.loads(invoke("solve", path, "--format", "json", "--top", "0").stdout)
    second = table["per_hardware"][1]
    result = invoke("solve", path, "--emit", "sglang", "--plan", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# {second['replicas']} replica(s) x {second['chips']} {second['hardware']}")
    assert f"--max-running-requests {second['batch']}" in result.stdout
    bad = invoke("solve", path, "--emit", "vllm", "--plan", "999")
    assert bad.exit_code == 2 and "--plan 999: only" in bad.output
