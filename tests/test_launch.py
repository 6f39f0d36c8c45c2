"""`planner solve --emit`: every flag exists in the named engine version; unsupported settings are said.

The flag lists below are pinned from the engines' own argument definitions:
- vLLM 0.19.1: `vllm/engine/arg_utils.py` of the vllm-0.19.1 wheel (`add_argument("--...")`; bool
  fields also get `--no-<name>` through argparse.BooleanOptionalAction), `vllm/config/cache.py`
  (CacheDType, KVOffloadingBackend), `vllm/config/speculative.py` (SpeculativeMethod).
- SGLang 0.5.23: `sglang/srt/arg_groups/fields/*.py` of the sglang-0.5.23 wheel (each field is a
  flag, `--` + name with dashes: `arg_groups/arg_utils.py`).
- TensorRT-LLM 1.0 trtllm-serve: recalled from its documentation, not read from a package (the
  wheel is not on PyPI in a form this project can read); emit() says so in its header.
The chips each engine runs on (`launch.PLATFORMS`) come from the same wheels: vLLM's
`vllm/platforms/__init__.py` (builtin_platform_plugins: tpu, cuda, rocm, xpu, cpu) and SGLang's
`sglang/srt/arg_groups/fields/device.py` (--device cuda, xpu, hpu, npu, cpu, musa).
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
    "--kv-transfer-config",  # arg_utils.py; kv_connector names from distributed/kv_transfer/kv_connector/factory.py
}
VLLM_KV_DTYPES = {"auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_inc", "fp8_ds_mla"}
SGLANG_0_5_23 = {
    "--model-path", "--tp-size", "--pp-size", "--attn-dp-size", "--ep-size", "--attn-cp-size",  # fields/parallel.py
    "--max-running-requests", "--chunked-prefill-size", "--context-length", "--mem-fraction-static",
    "--quantization", "--kv-cache-dtype", "--disable-radix-cache", "--speculative-algorithm",
    "--speculative-draft-model-path", "--speculative-num-steps", "--speculative-eagle-topk",
    "--speculative-num-draft-tokens", "--enable-hierarchical-cache", "--hicache-size", "--hicache-storage-backend",
    "--disaggregation-mode", "--disaggregation-transfer-backend",  # arg_groups/fields/disagg.py
    "--device",  # arg_groups/fields/device.py: cuda, xpu, hpu, npu, cpu, musa
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
                  layout=layout(p, model, domain), chips={a.id: (a.vendor, a.kind) for a in catalog.hardware.values()})


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
    plan(chips=16, layout={"tp": 1, "pp": 1, "ep": 16, "dp_attention": 16, "cp": 1, "replicas_per_system": 1,
                           "nodes": 2}),  # wide EP over two 8-GPU nodes
    plan(hardware="gaudi3"),  # SGLang's --device hpu
]


@pytest.mark.parametrize(("engine", "hardware", "expected"), [
    ("trtllm", "h100-sxm", None), ("trtllm", "mi300x", "TensorRT-LLM 1.0 does not run on amd chips"),
    ("sglang", "mi300x", None), ("sglang", "gaudi3", None), ("sglang", "tpu-v6e", "SGLang 0.5.23 does not run on google"),
    ("vllm", "tpu-v6e", None), ("vllm", "gaudi3", "only through an out-of-tree platform plugin"),
    ("vllm", "trainium2", "only through an out-of-tree platform plugin"),
    ("vllm", "groq-lpu", "served by groq's own stack"), ("sglang", "cerebras-wse3", "served by cerebras's own stack"),
])
def test_a_command_for_hardware_the_engine_does_not_run_on_says_so(catalog, scenario, engine, hardware, expected):
    """Valid input served differently than written: a command whose engine version does not run on
    the plan's chips carries a platform note (and `solve --emit` repeats it on stderr)."""
    from planner.launch import platform_warnings

    ln = launch(catalog, scenario, plan(hardware=hardware, chips=8 if hardware != "cerebras-wse3" else 1))
    text, warned = emit(engine, ln), platform_warnings(engine, ln)
    if expected is None:
        assert "platform:" not in text and warned == []
    else:
        assert "# note: platform: " in text and expected in text
        assert len(warned) == 1 and expected in warned[0]
    assert ("--device hpu" in text) == (engine == "sglang" and hardware == "gaudi3")
    assert ("torch_native" in text) == ("--device hpu" in text)  # and says what that engine path costs


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
    """An int4 KV cache has no flag in these engines: the nearest one that exists (FP8) is set and
    the note says what that costs. Leaving the flag out ran the cache at 16 bits, 3.6x the plan's."""
    text = emit("vllm", launch(catalog, scenario, PLANS[1]))
    assert "--kv-cache-dtype fp8" in text
    assert "# note: KV int4: vLLM 0.19.1 has no int4 KV-cache dtype" in text
    assert "fp8 is set, the nearest: it needs ~1.8x the planned KV memory" in text
    assert "pre-quantized int4 (AWQ/GPTQ) checkpoint" in text
    assert "# note: 4-bit weights and KV cache: accuracy not modelled" in text
    sglang = emit("sglang", launch(catalog, scenario, PLANS[1]))
    assert "--kv-cache-dtype fp8_e4m3" in sglang and "no int4 KV cache" in sglang
    trtllm = emit("trtllm", launch(catalog, scenario, PLANS[1]))
    assert 'dtype: "fp8"' in trtllm and "needs ~1.8x the planned KV memory" in trtllm


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
    """tp4 x ep8 (dp-attention 2): SGLang and TensorRT-LLM count the stage's world size (8) as their
    tp size, with attention in 2 groups of 4 (SGLang's parallel_hook.py asserts ep_size x moe_dp_size
    == tp_size); vLLM counts tp per data-parallel rank (EP = tp x dp)."""
    sg = emit("sglang", launch(catalog, scenario, PLANS[4]))
    assert "--tp-size 8" in sg and "--ep-size 8" in sg and "--attn-dp-size 2" in sg and "--attn-cp-size 2" in sg
    assert "--dp-size" not in sg and "--enable-dp-attention" not in sg  # the deprecated spelling
    trt = emit("trtllm", launch(catalog, scenario, PLANS[4]))
    assert "enable_attention_dp: true" in trt and "context parallelism 2: not set here" in trt
    assert "--tp_size 8" in trt and "--ep_size 8" in trt
    assert "attention tp 4 inside each of 2 attention-DP groups" in trt  # TRT-LLM's attention DP is tp1 per group
    vl = emit("vllm", launch(catalog, scenario, PLANS[4]))
    assert "--tensor-parallel-size 4" in vl and "--data-parallel-size 2" in vl and "--enable-expert-parallel" in vl
    assert "spans" not in vl  # one node: no multi-node note
    # the plan's batch (32) is the replica's total: vLLM admits --max-num-seqs per data-parallel rank
    # (one scheduler each), as TensorRT-LLM's attention-DP ranks do --max_batch_size (all 8 of its
    # tp_size ranks run attention DP); SGLang divides --max-running-requests by --attn-dp-size itself
    assert "--max-num-seqs 16" in vl and "--max-running-requests 32" in sg and "--max_batch_size 4" in trt


def test_a_replica_over_several_nodes_names_the_engines_multi_node_options(catalog, scenario) -> None:
    wide = PLANS[5]
    for engine, option in (("vllm", "--data-parallel-size-local"), ("sglang", "--nnodes"), ("trtllm", "MPI or Slurm")):
        text = emit(engine, launch(catalog, scenario, wide))
        assert "one replica spans 2 nodes: start it on each of them with" in text and option in text
    assert "--data-parallel-size 16" in emit("vllm", launch(catalog, scenario, wide))
    assert "--tp-size 16" in emit("sglang", launch(catalog, scenario, wide))


def test_solve_emit_prints_the_launch_of_the_chosen_plan(invoke) -> None:
    """--plan N ranks solve's plans by bill: each hardware's aggregated plan and the best disaggregated one."""
    path = paths.scenarios_dir() / "chat.toml"
    table = json.loads(invoke("solve", path, "--format", "json", "--top", "0").stdout)
    ranked = sorted([*table["per_hardware"], table["best_per_mode"]["disaggregated"]], key=lambda p: p["monthly_usd"])
    rank = next(i for i, p in enumerate(ranked, 1) if p.get("mode") == "aggregated" and i > 1)
    chosen = ranked[rank - 1]
    result = invoke("solve", path, "--emit", "sglang", "--plan", str(rank))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"# {chosen['replicas']} replica(s) x {chosen['chips']} {chosen['hardware']}")
    assert f"--max-running-requests {chosen['batch']}" in result.stdout
    bad = invoke("solve", path, "--emit", "vllm", "--plan", "999")
    assert bad.exit_code == 2 and "--plan 999: only" in bad.output


def disaggregated_plan() -> dict:
    """A disaggregated plan row as `solve` writes one: 2 x 8 h100 prefill (cache in its instances), 3 x 4
    h200 decode (batch 64, k=2)."""
    lay8 = {"tp": 8, "pp": 1, "ep": 1, "dp_attention": 1, "cp": 1, "replicas_per_system": 1, "nodes": 1}
    lay4 = dict(lay8, tp=4)
    prefill = {**plan(chips=8, replicas=2, batch=None, spec_k=0), "hardware": "h100-sxm", "layout": lay8,
               "prefix_cache_lives": "prefill instances"}
    decode = {**plan(chips=4, replicas=3, batch=64, spec_k=2, prefix_cache=False), "hardware": "h200-sxm",
              "layout": lay4}
    return {"mode": "disaggregated", "hardware": "h100-sxm+h200-sxm", "prefill": prefill, "decode": decode,
            "kv_transfer": {"link": "scale-out", "gbps": 400.0, "overlap": "layerwise"}, "quality_note": None}


@pytest.mark.parametrize("engine", sorted(PINNED))
def test_disaggregated_plans_launch_both_roles(catalog, scenario, engine) -> None:
    """Two launches, prefill then decode, each with its pool's layout and the engine's PD settings;
    the prefill instance runs one prompt at a time, as the plan's TTFT assumes; every flag pinned."""
    version, known = PINNED[engine]
    p = disaggregated_plan()
    text = emit(engine, Launch(plan=p, scenario=scenario, model=catalog.model(scenario.model.id),
                               draft=catalog.model("llama-3.2-1b"), layout={}))
    assert flags(text) <= known, flags(text) - known
    pre, dec = text.index("# prefill: 2 replica(s) x 8 h100-sxm"), text.index("# decode: 3 replica(s) x 4 h200-sxm")
    assert pre < dec
    prefill_part, decode_part = text[pre:dec], text[dec:]
    batch_flag = {"vllm": "--max-num-seqs", "sglang": "--max-running-requests", "trtllm": "--max_batch_size"}[engine]
    tp_flag = {"vllm": "--tensor-parallel-size", "sglang": "--tp-size", "trtllm": "--tp_size"}[engine]
    assert f"{batch_flag} 1 " in prefill_part and f"{batch_flag} 64 " in decode_part
    assert f"{tp_flag} 8 " in prefill_part and f"{tp_flag} 4 " in decode_part
    assert "routing:" in text
    if engine == "sglang":
        assert "--disaggregation-mode prefill" in prefill_part and "--disaggregation-mode decode" in decode_part
    elif engine == "vllm":
        assert prefill_part.count('"kv_connector":"NixlConnector","kv_role":"kv_both"') == 1
        assert decode_part.count('"kv_connector":"NixlConnector","kv_role":"kv_both"') == 1
        assert "--speculative-config" not in prefill_part and "--speculative-config" in decode_part
    else:
        assert prefill_part.count("cache_transceiver_config:") == decode_part.count("cache_transceiver_config:") == 1
        assert 'backend: "DEFAULT"' in prefill_part and "llm_api_options.prefill.yml" in prefill_part


def test_vllm_keeps_the_pd_connector_beside_kv_offload(catalog, scenario) -> None:
    """vLLM 0.19.1's --kv-offloading-size replaces the KV connector, which would drop the NIXL transfer:
    a decode pool that offloads KV gets one MultiConnector holding NIXL and LMCache instead."""
    p = disaggregated_plan()
    p["decode"]["tier_split"] = {"hbm": 0.75, "dram": 0.25, "nvme": 0.0}
    p["decode"]["memory_gb_per_chip"] = dict(p["decode"]["memory_gb_per_chip"], kv_dram=16.0)
    text = emit("vllm", Launch(plan=p, scenario=scenario, model=catalog.model(scenario.model.id),
                               draft=catalog.model("llama-3.2-1b"), layout={}))
    decode_part = text[text.index("# decode:"):]
    assert "--kv-offloading-size" not in decode_part
    config = json.loads(re.search(r"--kv-transfer-config '([^']*)'", decode_part).group(1))
    assert config["kv_connector"] == "MultiConnector"
    names = [c["kv_connector"] for c in config["kv_connector_extra_config"]["connectors"]]
    assert names == ["NixlConnector", "LMCacheConnectorV1"]
    assert config["kv_connector_extra_config"]["connectors"][1]["kv_connector_extra_config"][
        "lmcache.max_local_cpu_size"] == pytest.approx(16.0 * 1e9 / 2**30, abs=0.05)


def test_solve_emit_warns_on_stderr_when_the_engine_does_not_run_on_the_plans_hardware(invoke) -> None:
    path = paths.scenarios_dir() / "chat.toml"
    result = invoke("solve", path, "--set", 'search.hardware=["mi300x"]', "--emit", "trtllm")
    assert result.exit_code == 0, result.output
    # the best MI300X plan may be aggregated or disaggregated (then each pool's notes name the pool)
    pool = r"((prefill|decode): )?"
    assert re.search(rf"^warning: {pool}platform: TensorRT-LLM 1\.0 does not run on amd chips \(mi300x\)",
                     result.stderr, re.M)
    assert "warning" not in result.stdout and re.search(rf"^# note: {pool}platform:", result.stdout, re.M)
    fine = invoke("solve", path, "--set", 'search.hardware=["mi300x"]', "--emit", "vllm")
    assert fine.exit_code == 0 and "platform" not in fine.stderr


def _on(catalog, scenario, model_id: str, p: dict) -> Launch:
    model = catalog.model(model_id)
    domain = int(catalog.accelerator(p["hardware"]).scale_up_domain)
    return Launch(plan=p, scenario=scenario, model=model, draft=None, layout=layout(p, model, domain),
                  chips={a.id: (a.vendor, a.kind) for a in catalog.hardware.values()})


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_a_checkpoint_published_in_the_plans_format_is_served_as_it_is(catalog, scenario, engine: str) -> None:
    # DeepSeek-V3 ships FP8 weights: no online quantization, no "serve another checkpoint" note
    fp8 = emit(engine, _on(catalog, scenario, "deepseek-v3", plan(hardware="h200-sxm", spec_k=0)))
    assert "--quantization fp8" not in fp8 and "checkpoint of deepseek-ai/DeepSeek-V3" not in fp8
    # Kimi-K2.5 ships INT4 weights: its int4 plan needs no pre-quantized copy
    int4 = emit(engine, _on(catalog, scenario, "kimi-k2.5", plan(hardware="h200-sxm", weight_dtype="int4", spec_k=0)))
    assert "pre-quantized" not in int4
    # a 16-bit checkpoint at FP8, or an FP8 one at 16 bits, still says what it takes
    llama = emit(engine, _on(catalog, scenario, "llama-3.3-70b", plan(spec_k=0)))
    assert ("--quantization fp8" in llama) if engine != "trtllm" else ("serve an FP8 checkpoint" in llama)
    wide = emit(engine, _on(catalog, scenario, "deepseek-v3", plan(hardware="h200-sxm", weight_dtype="bf16", spec_k=0)))
    assert "deepseek-ai/DeepSeek-V3 is published with FP8 weights; serve a 16-bit conversion" in wide
    # a quantized checkpoint in another format: a conversion, never a load-time flag that cannot apply
    other = emit(engine, _on(catalog, scenario, "deepseek-v4-flash", plan(hardware="h200-sxm", spec_k=0)))
    assert "--quantization" not in other and "is published with 4-bit weights; serve an FP8 conversion" in other


def test_an_fp4_checkpoint_run_weight_only_is_not_sent_to_a_conversion(catalog, scenario) -> None:
    text = emit("vllm", _on(catalog, scenario, "kimi-k2.6", plan(hardware="h200-sxm", weight_dtype="int4", spec_k=0)))
    assert "published with FP4 weights; the plan runs them weight-only" in text and "conversion" not in text


@pytest.mark.parametrize("engine", sorted(ENGINES))
def test_a_model_without_a_known_repo_gets_a_placeholder_and_a_note(catalog, scenario, engine: str) -> None:
    """A model imported from a config.json that does not name its repo has hf_repo "unknown": the
    command names a placeholder (never the word "unknown", which an engine would try to download)
    and a note says what to put there."""
    from dataclasses import replace

    base = launch(catalog, scenario, PLANS[0])
    text = emit(engine, replace(base, model=base.model.model_copy(update={"hf_repo": "unknown"})))
    commands = [line for line in text.splitlines() if not line.startswith("#")]
    assert not [line for line in commands if "unknown" in line]
    assert "MODEL_PATH" in text and "# note: MODEL_PATH: the Hugging Face repo of" in text


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--emit", "vllm", "--format", "json"], "--format json: --emit prints a launch command"),
    (["--emit", "vllm", "--verify", "1"], "--verify 1: --emit prints a launch command"),
    (["--verify", "1", "--format", "csv"], "--verify: CSV has one row per plan"),
])
def test_options_solve_would_drop_are_refused(invoke, extra: list[str], fragment: str) -> None:
    """--emit printed its command and ignored --format and --verify; --verify with CSV simulated and
    printed nothing of it: each is now one line, exit 2, before any work."""
    result = invoke("solve", str(paths.scenarios_dir() / "chat.toml"), *extra)
    assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
