"""Launch configurations: the engine command that would run a plan (`planner solve --emit ENGINE`).

Every flag written here is in the engine's flag list for the version named in ENGINES (read from
that version's argument parser; tests/test_launch.py pins the lists). A plan setting an engine
cannot express is written as a comment saying so, never as an invented flag. Pure text building:
no IO, so the CLI prints what this returns.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field, replace
from typing import Any

from planner.lowering import KV_BYTES
from planner.quality import as_published
from planner.render import spec_words
from planner.schema import ModelSpec, Scenario
from planner.schema.hardware import SPECIALIST_KINDS

CHUNK_TOKENS = 8192
"""Tokens per prefill chunk the cost model assumes (planner/model/README.md, memory): the engine's
batched-token budget is set to it so the plan and the engine agree."""


@dataclass(frozen=True)
class Engine:
    name: str
    version: str
    checked: str  # where the flag names were read


ENGINES = {
    "vllm": Engine("vLLM", "0.19.1", "vllm 0.19.1 wheel: vllm/engine/arg_utils.py and vllm/config/{cache,speculative}.py"),
    "sglang": Engine("SGLang", "0.5.23", "sglang 0.5.23 wheel: sglang/srt/arg_groups/fields/*.py (flag = field name with dashes)"),
    "trtllm": Engine("TensorRT-LLM", "1.0", "trtllm-serve and LLM API options as documented for TensorRT-LLM 1.0 "
                     "(recalled, not checked against an installed package)"),
}


@dataclass(frozen=True)
class Platforms:
    """Chip vendors (the catalog's `vendor`) an engine version runs on as shipped, and where that was read."""

    vendors: frozenset[str]
    source: str


PLATFORMS = {
    "vllm": Platforms(frozenset({"nvidia", "amd", "google"}),
                      "vllm 0.19.1 wheel: vllm/platforms/__init__.py, built-in platforms cuda, rocm, tpu, xpu (Intel "
                      "GPUs) and cpu; any other chip only through an out-of-tree plugin (entry-point group "
                      "vllm.platform_plugins)"),
    "sglang": Platforms(frozenset({"nvidia", "amd", "intel"}),
                        "sglang 0.5.23 wheel: sglang/srt/arg_groups/fields/device.py, --device cuda, xpu, hpu (Intel "
                        "Gaudi), npu, cpu or musa; AMD GPUs run as cuda through ROCm"),
    "trtllm": Platforms(frozenset({"nvidia"}), "TensorRT-LLM builds on CUDA and TensorRT: NVIDIA GPUs only"),
}
SGLANG_DEVICE = {"intel": "hpu"}  # vendor -> SGLang --device where auto-detection is not the CUDA/ROCm default


def platform_note(engine: str, ln: Launch) -> str | None:
    """Why this command may not start on the plan's hardware: the engine version does not run on
    that vendor's chips as shipped (PLATFORMS). None where it does, or where the chip is unknown."""
    if ln.chip is None:
        return None
    vendor, kind = ln.chip
    platforms, e = PLATFORMS[engine], ENGINES[engine]
    if vendor in platforms.vendors:
        return None
    hw = ln.plan["hardware"]
    if kind in SPECIALIST_KINDS:
        why = f"{hw} is served by {vendor}'s own stack, which no open engine runs on"
    elif engine == "vllm":
        why = f"vLLM runs {hw} ({vendor}) only through an out-of-tree platform plugin, not pinned here"
    else:
        why = f"{e.name} {e.version} does not run on {vendor} chips ({hw})"
    return (f"platform: {why} ({platforms.source}); the flags say what the plan needs, not a command checked "
            "on this hardware")


@dataclass
class Launch:
    """What an engine needs to run a plan, engine-neutral."""

    plan: dict[str, Any]
    scenario: Scenario
    model: ModelSpec
    draft: ModelSpec | None
    layout: dict[str, int]
    pd_role: str | None = None  # 'prefill' or 'decode' for a pool of a disaggregated plan
    chips: dict[str, tuple[str, str]] = field(default_factory=dict)  # hardware id -> (vendor, kind) in the catalog

    @property
    def chip(self) -> tuple[str, str] | None:
        """(vendor, kind) of the plan's hardware, None where the caller did not say."""
        return self.chips.get(self.plan.get("hardware", ""))

    @property
    def vendor(self) -> str | None:
        return self.chip[0] if self.chip else None

    @property
    def max_len(self) -> int:
        w = self.scenario.workload
        cap = (w.input_tokens.max or self.model.max_context) + (w.output_tokens.max or 0)
        return min(cap, self.model.max_context)

    @property
    def offload_gb_per_chip(self) -> float:
        """Host memory the plan uses per chip for KV (active KV on host tiers plus a prefix cache
        that does not fit in the HBM left over)."""
        mem = self.plan["memory_gb_per_chip"]
        if mem.get("prefix_cache_host") is not None:  # the model's own split, the one the bill pays for
            spill = mem["prefix_cache_host"] if self.plan["prefix_cache"] else 0.0
        else:  # a plan written before the split was recorded: what the leftover HBM cannot hold
            free = max((mem["usable_hbm"] or 0) - (mem["weights"] or 0) - (mem["kv_hbm"] or 0) - (mem["activations"] or 0), 0)
            spill = max((mem["prefix_cache"] or 0) - free, 0) if self.plan["prefix_cache"] else 0.0
        return (mem["kv_dram"] or 0) + (mem["kv_nvme"] or 0) + spill


def emit(engine: str, launch: Launch) -> str:
    """The launch configuration for `engine` (one of ENGINES) as a commented shell script."""
    launch, unknown = with_repo_placeholders(launch)
    if launch.plan.get("mode") == "disaggregated":
        text = emit_disaggregated(engine, launch)
    else:
        lines, notes = BUILDERS[engine](launch)
        text = "\n".join(_header(engine, launch) + lines + _notes(notes, launch)) + "\n"
    return text + "".join(f"# note: {line}\n" for line in unknown)


MODEL_PLACEHOLDER, DRAFT_PLACEHOLDER = "MODEL_PATH", "DRAFT_MODEL_PATH"


def with_repo_placeholders(launch: Launch) -> tuple[Launch, list[str]]:
    """A model whose Hugging Face repo is unknown (imported from a config.json that does not name
    it) is written as a placeholder the note explains, never as the word "unknown" an engine would
    try to download."""
    notes, model, draft = [], launch.model, launch.draft
    if model.hf_repo in (None, "", "unknown"):
        model = model.model_copy(update={"hf_repo": MODEL_PLACEHOLDER})
        notes.append(f"{MODEL_PLACEHOLDER}: the Hugging Face repo of {launch.model.id} is not known (its config.json "
                     "does not name it); put the repo, or the local folder with its weights, in its place")
    if draft is not None and draft.hf_repo in (None, "", "unknown"):
        draft = draft.model_copy(update={"hf_repo": DRAFT_PLACEHOLDER})
        notes.append(f"{DRAFT_PLACEHOLDER}: the Hugging Face repo of the draft {launch.draft.id} is not known; put "
                     "the repo, or the local folder with its weights, in its place")
    return (replace(launch, model=model, draft=draft) if notes else launch), notes


def platform_warnings(engine: str, launch: Launch) -> list[str]:
    """`platform_note` of the plan, or of each pool of a disaggregated plan (for the CLI's stderr:
    the script's own `# note:` lines are easy to miss)."""
    if launch.plan.get("mode") != "disaggregated":
        return [n for n in (platform_note(engine, launch),) if n]
    pools = [(role, replace(launch, plan=launch.plan[role], pd_role=role)) for role in ("prefill", "decode")]
    return [f"{role}: {n}" for role, ln in pools if (n := platform_note(engine, ln))]


def pool_plan(plan: dict[str, Any], role: str) -> dict[str, Any]:
    """One pool of a disaggregated plan as the aggregated builders read a plan: a prefill instance
    runs one prompt at a time, as the plan's TTFT assumes (running requests capped at 1), without
    speculation."""
    pool = dict(plan[role])
    if role == "prefill":
        pool.update(batch=1, spec_k=0, tier_split={"hbm": 1.0, "dram": 0.0, "nvme": 0.0})
        pool["memory_gb_per_chip"] = dict(pool["memory_gb_per_chip"], kv_dram=0.0, kv_nvme=0.0)
    else:
        pool["prefix_cache"] = False  # the cache serves the prefill pool
        pool["memory_gb_per_chip"] = dict(pool["memory_gb_per_chip"], prefix_cache=0.0)
    pool["quality_note"] = plan.get("quality_note")
    return pool


# PD transfer settings (flags pinned in tests/test_launch.py): vLLM's NIXL connector (kv_role kv_both
# on both sides, vllm/config/kv_transfer.py), SGLang's --disaggregation-mode with its default Mooncake
# transfer engine, TensorRT-LLM's cache transceiver (recalled, as its flags).
NIXL = {"kv_connector": "NixlConnector", "kv_role": "kv_both"}
ROUTERS = {
    "vllm": "a PD proxy sends each request to a prefill instance with max_tokens 1, then to a decode instance "
            "with the KV handle (vLLM's examples/online_serving/disaggregated_serving proxy, llm-d or NVIDIA "
            "Dynamo); its command is not pinned here",
    "sglang": "the sglang-router package routes requests (launch_router with --pd-disaggregation and each "
              "instance's URL, prefill ones with their bootstrap port); its flags are not pinned here",
    "trtllm": "trtllm-serve disaggregated -c <config> lists the context (prefill) and generation (decode) "
              "servers and routes between them (recalled from the TensorRT-LLM 1.0 documentation)",
}


def emit_disaggregated(engine: str, launch: Launch) -> str:
    """Two launch configurations, prefill then decode, each with the engine's PD role settings."""
    plan, e = launch.plan, ENGINES[engine]
    link = plan.get("kv_transfer") or {}
    out = [f"# disaggregated: a prefill pool and a decode pool, KV shipped over {link.get('link', 'the network')} "
           f"({link.get('gbps', '?')} GB/s, {link.get('overlap', 'layerwise')})",
           f"# {e.name} {e.version}; flag names from {e.checked}",
           f"# routing: {ROUTERS[engine]}"]
    notes: list[str] = []
    for role in ("prefill", "decode"):
        pool = pool_plan(plan, role)
        lay = plan[role]["layout"]
        ln = Launch(plan=pool, scenario=launch.scenario, model=launch.model, draft=launch.draft, layout=lay,
                    pd_role=role, chips=launch.chips)
        lines, pool_notes = BUILDERS[engine](ln)
        where = pool.get("prefix_cache_lives", "off") if role == "prefill" else "-"
        out += ["", f"# {role}: {pool['replicas']} replica(s) x {pool['chips']} {pool['hardware']}: "
                f"weights {pool['weight_dtype']}, KV {pool['kv_dtype']}"
                + (f", batch {pool['batch']}, speculation {spec_words(pool)}" if role == "decode" else
                   f", prefix cache {where}"),
                _layout_line(lay), *lines]
        notes += [f"{role}: {n}" for n in pool_notes if n != plan.get("quality_note")]
        if role == "prefill" and where == "shared host pool":
            notes.append("prefill: the prefix cache is one pool in the prefill instances' host memory (Mooncake "
                         "Store / LMCache) that the decode instances also write to; its settings are not pinned here")
    return "\n".join(out + _notes(notes, launch)) + "\n"


def _layout_line(lay: dict[str, int]) -> str:
    return (f"# layout per replica: tp {lay['tp']}, pp {lay['pp']}, ep {lay['ep']}, dp_attention {lay['dp_attention']}, "
            f"cp {lay['cp']}; {lay['nodes']} node(s) per replica")


def _header(engine: str, ln: Launch) -> list[str]:
    p, e, lay = ln.plan, ENGINES[engine], ln.layout
    return [
        f"# {p['replicas']} replica(s) x {p['chips']} {p['hardware']}: batch {p['batch']}, weights {p['weight_dtype']}, "
        f"KV {p['kv_dtype']}, speculation {spec_words(p)}, prefix cache {'on' if p['prefix_cache'] else 'off'}",
        _layout_line(lay),
        f"# {e.name} {e.version}; flag names from {e.checked}",
        f"# Run one copy per replica ({p['replicas']}) behind a load balancer; aggregated serving "
        "(prefill and decode on the same replicas: the plan has no disaggregated pools).",
    ]


def _notes(notes: list[str], ln: Launch) -> list[str]:
    if ln.plan.get("quality_note"):
        notes = [*notes, ln.plan["quality_note"]]
    return [f"# note: {n}" for n in notes]


def _command(program: str, words: list[str]) -> list[str]:
    """`program` then one flag (with its value) per line, shell-quoted; a leading positional
    argument (the model) stays on the first line."""
    first = program
    if words and not words[0].startswith("--"):
        first, words = f"{program} {shlex.quote(words[0])}", words[1:]
    out, i = [first], 0
    while i < len(words):
        flag = words[i]
        value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else None
        out.append(f"  {flag}" + (f" {shlex.quote(value)}" if value is not None else ""))
        i += 2 if value is not None else 1
    return [line + (" \\" if n < len(out) - 1 else "") for n, line in enumerate(out)]


def _quantised_checkpoint(ln: Launch) -> bool:
    """The repo's weights are already quantised (its config.json carries the format, which engines
    follow; no load-time flag converts them to another one)."""
    return ln.model.weight_dtype_published not in (None, "bf16")


def _online_fp8(dtype: str, ln: Launch) -> bool:
    """FP8 weights made when loading (`--quantization fp8`): only from a 16-bit checkpoint."""
    return dtype == "fp8" and not _quantised_checkpoint(ln)


PUBLISHED_WEIGHTS = {"fp8": "FP8 weights", "int8": "8-bit weights", "int4": "4-bit weights", "fp4": "FP4 weights"}
CHECKPOINT_KIND = {"int4": "int4 (AWQ/GPTQ)", "fp4": "NVFP4/MXFP4", "int8": "INT8 W8A8", "fp8": "FP8", "bf16": "16-bit"}


def _weights_note(dtype: str, ln: Launch) -> str | None:
    """What the weights need beyond the repo: nothing where the plan keeps the published format."""
    repo, published = ln.model.hf_repo, ln.model.weight_dtype_published
    if published == "fp4" and dtype == "int4":
        return (f"weights int4: {repo} is published with FP4 weights; the plan runs them weight-only (4-bit weights, "
                "16-bit GEMMs), as engines do on chips without FP4 tensor cores: check that this engine version "
                "loads the FP4 checkpoint on this hardware")
    if as_published(dtype, published):
        return None
    if _quantised_checkpoint(ln):
        article = "a" if dtype == "bf16" else "an"
        return (f"weights {dtype}: {repo} is published with {PUBLISHED_WEIGHTS[published]}; serve {article} "
                f"{CHECKPOINT_KIND[dtype]} conversion "
                "of it in place of the repo above (no flag converts a quantized checkpoint when loading)")
    if dtype in ("int4", "fp4", "int8"):
        return (f"weights {dtype}: serve a pre-quantized {CHECKPOINT_KIND[dtype]} checkpoint of {repo} in place of the "
                "repo above; no flag quantizes to this format when loading")
    return None


def _spec_method(ln: Launch) -> str:
    return ln.plan.get("spec_method", ln.scenario.speculative.method) if ln.plan["spec_k"] > 0 else "none"


def _spec_note(method: str, plan: dict[str, Any], written: tuple[str, ...], engine: str) -> list[str]:
    """A plan's speculation the command does not set, said in a note (never an invented flag)."""
    if method == "none" or method in written:
        return []
    why = {"eagle3": "it needs the path of an EAGLE-3 head trained for this model",
           "self": "self-speculation with a compressed KV cache (MagicDec) is a research prototype, not an engine option",
           }.get(method, f"no {method} drafting option is pinned for {engine} here")
    return [f"speculation {method} k={plan['spec_k']}: not set here ({why})"]


def _vllm(ln: Launch) -> tuple[list[str], list[str]]:
    p, lay, notes = ln.plan, ln.layout, []
    words = [ln.model.hf_repo, "--tensor-parallel-size", str(lay["tp"]), "--pipeline-parallel-size", str(lay["pp"])]
    if lay["dp_attention"] > 1:
        words += ["--data-parallel-size", str(lay["dp_attention"])]
    if lay["ep"] > 1:
        words += ["--enable-expert-parallel"]
    if lay["cp"] > 1:
        words += ["--decode-context-parallel-size", str(lay["cp"])]
    # vLLM runs one scheduler per data-parallel rank, each admitting --max-num-seqs (vllm 0.19.1
    # EngineCore: max_num_running_reqs = max_num_seqs, not divided; vllm 0.34.0 config/scheduler.py
    # still: "max_num_seqs ... applies per data-parallel rank"): the plan's batch is the replica's
    # total over its attention-DP groups
    per_rank = max(1, p["batch"] // lay["dp_attention"])
    words += ["--max-num-seqs", str(per_rank), "--max-num-batched-tokens", str(CHUNK_TOKENS),
              "--max-model-len", str(ln.max_len),
              "--gpu-memory-utilization", f"{ln.scenario.serving.hbm_fraction:g}"]
    if _online_fp8(p["weight_dtype"], ln):
        words += ["--quantization", "fp8"]
    kv = {"bf16": "auto", "fp8": "fp8"}.get(p["kv_dtype"])
    words += ["--kv-cache-dtype", kv or "fp8"]
    if not kv:
        notes.append(f"KV {p['kv_dtype']}: vLLM 0.19.1 has no {p['kv_dtype']} KV-cache dtype (auto, float16, bfloat16, "
                     f"fp8, fp8_e4m3, fp8_e5m2, fp8_inc, fp8_ds_mla); fp8 is set, the nearest: {_kv_instead(p['kv_dtype'])}")
    words += ["--enable-prefix-caching" if p["prefix_cache"] else "--no-enable-prefix-caching"]
    method = _spec_method(ln)
    if method == "draft" and ln.draft is not None:
        cfg = {"method": "draft_model", "model": ln.draft.hf_repo, "num_speculative_tokens": p["spec_k"]}
        words += ["--speculative-config", json.dumps(cfg, separators=(",", ":"))]
    elif method == "mtp":
        words += ["--speculative-config", json.dumps({"method": "mtp", "num_speculative_tokens": p["spec_k"]},
                                                     separators=(",", ":"))]
    elif method in ("ngram", "suffix"):  # vLLM drafts both from the context (suffix: Arctic Inference's suffix decoding)
        words += ["--speculative-config", json.dumps({"method": method, "num_speculative_tokens": p["spec_k"]},
                                                     separators=(",", ":"))]
    notes += _spec_note(method, p, ("draft", "mtp", "ngram", "suffix"), "vLLM")
    offload = ln.offload_gb_per_chip
    if offload > 0 and ln.pd_role:
        # --kv-offloading-size would replace the PD connector (VllmConfig._post_init_kv_transfer_config):
        # both go in one MultiConnector, LMCache sized per rank as that function sizes it
        lmcache = {"kv_connector": "LMCacheConnectorV1", "kv_role": "kv_both", "kv_connector_extra_config": {
            "lmcache.local_cpu": True, "lmcache.max_local_cpu_size": round(offload * 1e9 / 2**30, 1)}}
        multi = {"kv_connector": "MultiConnector", "kv_role": "kv_both",
                 "kv_connector_extra_config": {"connectors": [NIXL, lmcache]}}
        words += ["--kv-transfer-config", json.dumps(multi, separators=(",", ":"))]
        notes.append(_tier_note(p, "LMCache (beside the NIXL transfer, in a MultiConnector) keeps reusable KV in host DRAM"))
    elif offload > 0:
        total = offload * lay["tp"]  # vLLM: the buffer summed over TP ranks, GiB
        words += ["--kv-offloading-backend", "lmcache", "--kv-offloading-size", f"{total * 1e9 / 2**30:.0f}"]
        notes.append(_tier_note(p, "vLLM's KV offloading (LMCache backend) keeps reusable KV in host DRAM"))
    elif ln.pd_role:
        words += ["--kv-transfer-config", json.dumps(NIXL, separators=(",", ":"))]
    note = _weights_note(p["weight_dtype"], ln)
    notes += _multi_node_note(lay, "vllm")
    notes.append(platform_note("vllm", ln))
    return _command("vllm serve", words), [n for n in (note, *notes) if n]


def _sglang(ln: Launch) -> tuple[list[str], list[str]]:
    p, lay, notes = ln.plan, ln.layout, []
    # SGLang's --tp-size is the stage's world size; attention runs in --attn-dp-size groups of
    # tp_size / attn_dp_size ranks (arg_groups/parallel_hook.py; `--dp-size N --enable-dp-attention`
    # is the deprecated spelling of the same)
    words = ["--model-path", ln.model.hf_repo, "--tp-size", str(lay["tp"] * lay["dp_attention"]),
             "--pp-size", str(lay["pp"])]
    if lay["dp_attention"] > 1:
        words += ["--attn-dp-size", str(lay["dp_attention"])]
    if lay["ep"] > 1:
        words += ["--ep-size", str(lay["ep"])]
    if lay["cp"] > 1:
        words += ["--attn-cp-size", str(lay["cp"])]
    # --max-running-requests is the replica's total: SGLang gives each attention-DP rank
    # max_running_requests // attn_dp_size request slots (sglang 0.5.23, mem_cache/kv_cache_configurator.py,
    # model_executor/pool_configurator.py; read from the PyPI wheel, 2026-12-03)
    words += ["--max-running-requests", str(p["batch"]), "--chunked-prefill-size", str(CHUNK_TOKENS),
              "--context-length", str(ln.max_len), "--mem-fraction-static", f"{ln.scenario.serving.hbm_fraction:g}"]
    if _online_fp8(p["weight_dtype"], ln):
        words += ["--quantization", "fp8"]
    kv = {"bf16": "auto", "fp8": "fp8_e4m3"}.get(p["kv_dtype"])
    words += ["--kv-cache-dtype", kv or "fp8_e4m3"]
    if p["kv_dtype"] == "int4":
        notes.append(f"KV int4: SGLang 0.5.23 has no int4 KV cache; fp8_e4m3 is set, the nearest: {_kv_instead('int4')}. "
                     "Its nvfp4 KV cache (--kv-cache-dtype nvfp4, CUDA 12.8+) takes the plan's 0.5625 B per element "
                     "but is a float format with its own accuracy")
    elif not kv:
        notes.append(f"KV {p['kv_dtype']}: SGLang 0.5.23 has no {p['kv_dtype']} KV-cache dtype; fp8_e4m3 is set, "
                     f"the nearest: {_kv_instead(p['kv_dtype'])}")
    if not p["prefix_cache"]:
        words += ["--disable-radix-cache"]
    method = _spec_method(ln)
    if method == "draft" and ln.draft is not None:
        words += ["--speculative-algorithm", "STANDALONE", "--speculative-draft-model-path", ln.draft.hf_repo,
                  "--speculative-num-steps", str(p["spec_k"]), "--speculative-eagle-topk", "1",
                  "--speculative-num-draft-tokens", str(p["spec_k"] + 1)]
    elif method == "mtp":
        words += ["--speculative-algorithm", "NEXTN", "--speculative-num-steps", str(p["spec_k"]),
                  "--speculative-eagle-topk", "1", "--speculative-num-draft-tokens", str(p["spec_k"] + 1)]
    notes += _spec_note(method, p, ("draft", "mtp"), "SGLang")
    offload = ln.offload_gb_per_chip
    if offload > 0:
        words += ["--enable-hierarchical-cache", "--hicache-size", f"{offload:.0f}"]
        if p["tier_split"]["nvme"] > 0:
            words += ["--hicache-storage-backend", "file"]
        notes.append(_tier_note(p, "HiCache keeps KV in host DRAM (--hicache-size GB per rank)"))
    if ln.pd_role:
        words += ["--disaggregation-mode", ln.pd_role, "--disaggregation-transfer-backend", "mooncake"]
    if ln.vendor in SGLANG_DEVICE:
        words += ["--device", SGLANG_DEVICE[ln.vendor]]
        notes.append("--device hpu: SGLang 0.5.23 runs attention there with its torch_native backend "
                     "(arg_groups/platform_hook.py), not a fused kernel as the plan's attention times assume: "
                     "expect slower long prompts than planned")
    note = _weights_note(p["weight_dtype"], ln)
    notes += _multi_node_note(lay, "sglang")
    notes.append(platform_note("sglang", ln))
    return _command("python -m sglang.launch_server", words), [n for n in (note, *notes) if n]


def _trtllm(ln: Launch) -> tuple[list[str], list[str]]:
    p, lay, notes = ln.plan, ln.layout, []
    kv_cache: dict[str, Any] = {"enable_block_reuse": bool(p["prefix_cache"]),
                                "free_gpu_memory_fraction": ln.scenario.serving.hbm_fraction}
    if p["kv_dtype"] != "bf16":
        kv_cache["dtype"] = "fp8"
    if p["kv_dtype"] not in ("bf16", "fp8"):
        notes.append(f"KV {p['kv_dtype']}: only fp8 is pinned for the LLM API's kv_cache_config.dtype; fp8 is set, "
                     f"the nearest: {_kv_instead(p['kv_dtype'])}")
    offload = ln.offload_gb_per_chip
    if offload > 0:
        kv_cache["host_cache_size"] = int(offload * 1e9)
        notes.append(_tier_note(p, "kv_cache_config.host_cache_size offloads reusable KV blocks to host DRAM "
                                   "(NVIDIA Dynamo KVBM adds an NVMe tier; its options are not pinned here)"))
    options: dict[str, Any] = {"kv_cache_config": kv_cache}
    if ln.pd_role:  # a context (prefill) or generation (decode) server of a disaggregated deployment
        options["cache_transceiver_config"] = {"backend": "DEFAULT"}
    if lay["dp_attention"] > 1:
        options["enable_attention_dp"] = True
        if lay["tp"] > 1:
            notes.append(f"attention tp {lay['tp']} inside each of {lay['dp_attention']} attention-DP groups: "
                         "TensorRT-LLM's attention DP runs attention on one rank per group, so this runs as "
                         f"attention DP {lay['tp'] * lay['dp_attention']} (more KV memory per sequence than planned)")
    method = _spec_method(ln)
    if method == "draft" and ln.draft is not None:
        options["speculative_config"] = {"decoding_type": "DraftTarget", "max_draft_len": p["spec_k"],
                                         "speculative_model_dir": ln.draft.hf_repo}
    elif method == "mtp":
        options["speculative_config"] = {"decoding_type": "MTP", "num_nextn_predict_layers": p["spec_k"]}
    notes += _spec_note(method, p, ("draft", "mtp"), "TensorRT-LLM")
    options_file = f"llm_api_options.{ln.pd_role}.yml" if ln.pd_role else "llm_api_options.yml"
    yaml = [f"cat > {options_file} <<'EOF'", *_yaml(options), "EOF"]
    words = [ln.model.hf_repo, "--backend", "pytorch", "--tp_size", str(lay["tp"] * lay["dp_attention"]),
             "--pp_size", str(lay["pp"])]  # tp_size: the world size, attention DP included
    if lay["ep"] > 1:
        words += ["--ep_size", str(lay["ep"])]
    # with attention DP every rank runs its own executor and batches up to max_batch_size (recalled,
    # as the rest of this engine's flags: vLLM's --max-num-seqs is per DP rank too), and every one of
    # the tp_size ranks runs attention DP (the note above), so the plan's batch, the replica's total,
    # is divided over all of them
    ranks = lay["tp"] * lay["dp_attention"] if lay["dp_attention"] > 1 else 1
    per_rank = max(1, p["batch"] // ranks)
    words += ["--max_batch_size", str(per_rank), "--max_num_tokens", str(CHUNK_TOKENS),
              "--max_seq_len", str(ln.max_len), "--extra_llm_api_options", options_file]
    if _online_fp8(p["weight_dtype"], ln):
        notes.append(f"weights fp8: serve an FP8 checkpoint of {ln.model.hf_repo} (e.g. one made with NVIDIA "
                     "ModelOpt); trtllm-serve reads the quantization from the checkpoint")
    if lay["cp"] > 1:
        notes.append(f"context parallelism {lay['cp']}: not set here (no pinned trtllm-serve flag)")
    note = _weights_note(p["weight_dtype"], ln)
    notes += _multi_node_note(lay, "trtllm")
    notes.append(platform_note("trtllm", ln))
    return yaml + _command("trtllm-serve", words), [n for n in (note, *notes) if n]


MULTI_NODE = {
    "vllm": "vLLM's --data-parallel-size-local and --data-parallel-address (data and expert parallel ranks per "
            "node; arg_utils.py), or a Ray cluster for pipeline stages",
    "sglang": "SGLang's --nnodes, --node-rank and --dist-init-addr (arg_groups/fields/parallel.py)",
    "trtllm": "an MPI or Slurm launcher (trtllm-serve starts one rank per GPU of every node)",
}


def _kv_instead(kv_dtype: str) -> str:
    """What serving the plan's KV at FP8 instead of `kv_dtype` does to it, in words."""
    ratio = KV_BYTES["fp8"] / KV_BYTES[kv_dtype]
    if ratio < 1.1:
        return f"~{ratio:.2f}x the planned KV memory, the same batch fits"
    return (f"it needs ~{ratio:.1f}x the planned KV memory, so the engine holds ~1/{ratio:.1f} of the planned "
            "sequences at the planned context and queues the rest (the plan's latency and bill assume "
            f"{kv_dtype}; `planner solve --set 'search.kv_dtype=[\"fp8\",\"bf16\"]'` plans for what the engine can run)")


def _multi_node_note(lay: dict[str, int], engine: str) -> list[str]:
    """A replica wider than one node is started on every node with the engine's multi-node options;
    their values (addresses, ranks) belong to the cluster, so they are named, not written."""
    if lay["nodes"] <= 1:
        return []
    return [f"one replica spans {lay['nodes']} nodes: start it on each of them with {MULTI_NODE[engine]}; "
            "those options are not set here"]


def _tier_note(plan: dict[str, Any], how: str) -> str:
    t = plan["tier_split"]
    active = f"; the plan also keeps {t['dram']:.0%}/{t['nvme']:.0%} of *active* KV in DRAM/NVMe, which " \
             "no engine flag does (engines page active KV in HBM): expect more HBM use" if t["dram"] or t["nvme"] else ""
    return how + active


def _yaml(value: dict[str, Any], indent: int = 0) -> list[str]:
    """A small YAML writer for the options file (mappings of scalars; no dependency)."""
    lines = []
    for key, v in value.items():
        if isinstance(v, dict):
            lines += [" " * indent + f"{key}:", *_yaml(v, indent + 2)]
        else:
            shown = json.dumps(v) if isinstance(v, str | bool) else f"{v:g}" if isinstance(v, float) else str(v)
            lines.append(" " * indent + f"{key}: {shown}")
    return lines


BUILDERS = {"vllm": _vllm, "sglang": _sglang, "trtllm": _trtllm}  # engine -> (command lines, notes)
