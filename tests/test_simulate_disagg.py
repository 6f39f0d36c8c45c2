"""`planner simulate` of disaggregated plans (issue #16 on top of #15): a prefill pool, a decode pool
and the KV shipped between them.

Expected values are derived here: KV bytes from Llama 3.1 8B's published config.json (32 layers,
8 KV heads of 128 dims, bf16: 2 x 32 x 8 x 128 x 2 = 131,072 bytes per token), link speeds from
the catalog's fields, prefill and step times from the simulator's own single-request runs.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import sim_requests, sim_scenario

from planner.catalog import load_catalog
from planner.cli.file_cmds import load_scenario
from planner.model.numpy_reference import twin
from planner.simulate import fleet
from planner.simulate.analytic import analytic
from planner.simulate.plan import sim_plan

LLAMA8B_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2
LLAMA8B_LAYERS = 32
POOL = {"hardware": "h100-sxm", "chips": 1, "replicas": 1, "weight_dtype": "bf16", "kv_dtype": "bf16",
        "attention": "flash", "layout": {"tp": 1}}
DISAGG = {"mode": "disaggregated",
          "prefill": dict(POOL, prefix_cache=False),
          "decode": dict(POOL, batch=4, spec_k=0, tier_split={"hbm": 1.0, "dram": 0.0, "nvme": 0.0})}
AGGREGATED = dict(POOL, batch=4, spec_k=0, prefix_cache=False, tier_split={"hbm": 1.0, "dram": 0.0, "nvme": 0.0})


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def scenario(tmp_path: Path, catalog, rate: float = 1.0, turns: int = 1, reuse: float = 0.9):
    path = tmp_path / "tiny.toml"
    path.write_text(sim_scenario(rate=rate, turns=turns, reuse=reuse))
    return load_scenario(path, [], catalog)


def plan(prefill_replicas: int = 1, decode_replicas: int = 1, cache: str | None = None, **decode):
    p = json.loads(json.dumps(DISAGG))
    p["prefill"]["replicas"] = prefill_replicas
    p["decode"]["replicas"] = decode_replicas
    p["decode"].update(decode)
    if cache is not None:
        p["prefill"].update(prefix_cache=True, prefix_cache_lives=cache)
    return p


def run(sp, reqs, router="affinity"):
    opts = fleet.Options(duration_s=100.0, seed=0, router=router, warmup_s=0.0, drain_s=1000.0)
    return fleet.run(sp, reqs, opts)


def test_the_link_is_the_searchs_rule(tmp_path, catalog):
    """Two 1-chip H100 instances fit one 8-GPU NVLink domain: the KV crosses NVLink (one chip's
    link); on different hardware it crosses the slower side's NICs."""
    sc = scenario(tmp_path, catalog)
    h100, b200 = catalog.accelerator("h100-sxm"), catalog.accelerator("b200")
    same = sim_plan(plan(), sc, catalog).transfer
    assert same.link == "scale-up"
    assert same.bandwidth == pytest.approx(h100.scale_up_gbps * 1e9, rel=1e-6)
    mixed = plan()
    mixed["decode"]["hardware"] = "b200"
    other = sim_plan(mixed, sc, catalog).transfer
    assert other.link == "scale-out"
    nic = min(h100.scale_out_gbps, b200.scale_out_gbps)
    assert other.bandwidth == pytest.approx(nic * 1e9, rel=1e-6)


def test_one_request_alone_is_prefill_then_transfer_then_evals_decode(tmp_path, catalog, invoke):
    """A lone request: first token = its prefill + the part of the KV transfer that outlasts it
    (layer by layer: max(X / n, X - P (n - 1) / n)); then eval's decode steps, untouched."""
    sc = scenario(tmp_path, catalog)
    sp = sim_plan(plan(), sc, catalog)
    sp = replace(sp, transfer=replace(sp.transfer, bandwidth=2e9))  # slow enough for the transfer to show
    out = run(sp, sim_requests([2000], [100], [0.0]))
    ev = json.loads(invoke("eval", "--hardware", "h100-sxm", "--model", "llama-3.1-8b", "--chips", "1", "--batch",
                           "1", "--input", "2000", "--output", "100", "--format", "json").stdout)
    row = ev[0] if isinstance(ev, list) else ev
    prefill = row["ttft_s"]
    x = 2000 * LLAMA8B_KV_BYTES_PER_TOKEN / 2e9
    n = LLAMA8B_LAYERS
    visible = max(x / n, x - prefill * (n - 1) / n)
    assert visible > 0.01  # the case tests the overlap, not a rounding
    rec = out.records
    assert rec.first_s[0] == pytest.approx(prefill + visible, rel=2e-5)
    assert rec.transfer_s[0] == pytest.approx(visible, rel=2e-5)
    assert (rec.finish_s[0] - rec.first_s[0]) / 99 == pytest.approx(row["tpot_s"], rel=2e-5)
    after = run(replace(sp, transfer=replace(sp.transfer, layerwise=False)), sim_requests([2000], [100], [0.0]))
    assert after.records.first_s[0] == pytest.approx(prefill + x, rel=2e-5)


def test_transfer_grows_with_the_prompt_and_shrinks_with_the_link(tmp_path, catalog):
    sc = scenario(tmp_path, catalog)
    sp = sim_plan(plan(), sc, catalog)

    def shipped(tokens, gbps):
        p = replace(sp, transfer=replace(sp.transfer, bandwidth=gbps * 1e9, layerwise=False))
        return float(run(p, sim_requests([tokens], [2], [0.0])).records.transfer_s[0])

    assert shipped(1000, 10) < shipped(4000, 10)
    assert shipped(4000, 40) == pytest.approx(shipped(4000, 10) / 4, rel=1e-9)


def test_decode_is_not_stalled_by_prefill(tmp_path, catalog):
    """A long prompt arriving while a short request decodes: aggregated, its chunks ride in the
    decode steps and stretch the short request's TPOT; disaggregated, it runs on the prefill pool
    and the short request's TPOT is what it is alone."""
    sc = scenario(tmp_path, catalog)
    alone = sim_requests([100], [200], [0.0])
    both = sim_requests([100, 8000], [200, 1], [0.0, 0.2])

    def tpot(records):
        return float((records.finish_s[0] - records.first_s[0]) / 199)

    dis = sim_plan(plan(prefill_replicas=2), sc, catalog)
    agg = sim_plan(AGGREGATED, sc, catalog)
    assert tpot(run(dis, both, "round-robin").records) == pytest.approx(tpot(run(dis, alone).records), rel=1e-12)
    assert tpot(run(agg, both, "round-robin").records) > 1.05 * tpot(run(agg, alone).records)


def _two_turns(block=16):
    """One session: a 1,600-token turn with a 160-token reply, then a turn that reuses all of it."""
    return sim_requests([1600, 2000], [160, 10], [0.0, np.nan], session=[0, 0], reusable=[0, 1760], block=block,
                    next_turn=[1, -1], think=[1.0, 0.0])


def test_prefill_instances_cache_the_prompt_not_the_reply(tmp_path, catalog):
    """The reply's KV was computed in the decode pool: a prefill instance's cache holds the prompt it
    prefilled, so the next turn recomputes the reply (model.disagg.prefill_side_reuse)."""
    sc = scenario(tmp_path, catalog, turns=2)
    rec = run(sim_plan(plan(cache="prefill instances"), sc, catalog), _two_turns()).records
    assert rec.cached_tokens[1] == 1600


def test_a_shared_host_pool_holds_the_reply_too(tmp_path, catalog):
    """A shared pool receives the decode pool's KV as well: the second turn finds its whole reusable
    prefix there, in host DRAM (nothing of the pool is in HBM), whichever prefill replica it lands on."""
    sc = scenario(tmp_path, catalog, turns=2)
    rec = run(sim_plan(plan(prefill_replicas=2, cache="shared host pool"), sc, catalog), _two_turns(),
              "round-robin").records
    held = (1600 + 160 - 1) // 16 * 16  # whole blocks of the KV computed: the last reply token's never is
    assert rec.cached_tokens[1] == held > 1600
    assert rec.cached_by_tier[1].tolist() == [0, held, 0]


def test_remote_hits_reload_over_the_slower_link(tmp_path, catalog):
    """Blocks another instance holds cross the scale-out network: a remote reload costs more than a
    local one of the same tokens."""
    sc = scenario(tmp_path, catalog)
    sp = sim_plan(plan(cache="shared host pool"), sc, catalog)
    costs = fleet.costs_for(sp)
    local = float(costs.prefill_seconds(400, 0, 1600, 0))
    remote = float(costs.prefill_seconds(400, 0, 1600, 0, remote_dram=1600))
    assert remote > local > float(costs.prefill_seconds(400, 1600, 0, 0))


def test_analytic_restates_the_screen(tmp_path, catalog):
    """At the screen's replica count, the analytic p95 TTFT and TPOT are model/disagg.py's, so the
    simulator's comparison and `solve` cannot drift apart."""
    sc = scenario(tmp_path, catalog, rate=4.0, turns=3)
    sp = sim_plan(plan(cache="prefill instances", batch=8), sc, catalog)
    d = twin()["disagg"]
    pre_pool, dec_pool, ld = sp.pool("prefill"), sp.pool("decode"), sp.load
    one = d._as_prefill(pre_pool.cfg)
    pre = d.prefill_pool(pre_pool.arch, pre_pool.hw, one, ld, np.float64(0.0))
    in_p95 = twin()["queueing"].lognormal_quantile(ld.in_median, ld.in_sigma, ld.in_cap, 0.95)
    bw = np.float64(sp.transfer.bandwidth)
    x50 = d.transfer_seconds(pre_pool.arch, ld.in_median, one.kv_bytes, bw)
    x95 = d.transfer_seconds(pre_pool.arch, in_p95, one.kv_bytes, bw)
    fleet_ = d.prefill_fleet(pre_pool.arch, pre_pool.hw, one, ld, pre, x50, x95, np.float64(1.0), np.bool_(True))
    dec = d.decode_pool(dec_pool.arch, dec_pool.hw, dec_pool.cfg, dec_pool.spec, ld,
                        np.float64(dec_pool.draft_weight_bytes), np.bool_(True))
    p = plan(prefill_replicas=int(fleet_["replicas"]), cache="prefill instances", batch=8)
    ana = analytic(sim_plan(p, sc, catalog))
    assert ana["ttft_s"][0.95] == pytest.approx(float(fleet_["ttft_p95_s"]), rel=1e-9)
    assert ana["ttft_s"][0.5] == pytest.approx(float(fleet_["ttft_p50_s"]), rel=1e-9)
    assert ana["tpot_s"][0.95] == pytest.approx(float(dec["tpot_p95_s"]), rel=1e-9)
    assert ana["tpot_s"][0.5] == pytest.approx(float(dec["tpot_p50_s"]), rel=1e-9)
    assert ana["ttft_s"][0.99] >= ana["ttft_s"][0.95]


def test_cli_simulates_a_disaggregated_plan_file(tmp_path, invoke, write, snapshot):
    sc = tmp_path / "tiny.toml"
    sc.write_text(sim_scenario(rate=4.0, turns=3))
    import tomli_w

    path = write("plan.toml", tomli_w.dumps(plan(prefill_replicas=1, decode_replicas=2, cache="prefill instances",
                                                 batch=8)))
    result = invoke("simulate", sc, "--plan-file", path, "--duration", "120", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["mode"] == "disaggregated"
    assert doc["plan"]["decode"]["replicas"] == 2
    sim = doc["simulated"]
    assert sim["requests"]["finished"] == sim["requests"]["measured"] > 100
    assert set(sim["pools"]) == {"prefill", "decode"} and sim["pools"]["decode"]["replicas"] == 2
    assert 0 < sim["kv_transfer_s"]["p50"] <= sim["kv_transfer_s"]["p95"]
    assert doc["run"]["kv_link"]["link"] == "scale-up"
    table = invoke("simulate", sc, "--plan-file", path, "--duration", "60")
    assert table.exit_code == 0, table.stderr
    assert "(disaggregated)" in table.stdout and "decode slots busy" in table.stdout
    assert "prefill 1 x 1 h100-sxm (1 chip, 1 node)" in table.stdout
    assert "\n".join(line for line in table.stdout.splitlines() if "s wall" not in line) == snapshot


def test_a_disaggregated_plan_without_its_decode_pool_is_one_line(tmp_path, invoke, write):
    sc = tmp_path / "tiny.toml"
    sc.write_text(sim_scenario(rate=1.0, turns=1))
    path = write("plan.toml", 'mode = "disaggregated"\n[prefill]\nhardware = "h100-sxm"\n')
    result = invoke("simulate", sc, "--plan-file", path)
    assert result.exit_code == 2
    assert "decode" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_solve_verify_reranks_both_modes_by_simulation(tmp_path, invoke):
    """`solve --verify K` simulates solve's K cheapest plans of either mode and ranks them by simulated
    feasibility, then bill; each row says its mode and both p95s; JSON carries the same."""
    sc = tmp_path / "tiny.toml"
    sc.write_text(sim_scenario(rate=2.0, turns=3))
    result = invoke("solve", sc, "--verify", "3", "--verify-duration", "60", "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    checked = doc["verify"]["plans"]
    assert {c["mode"] for c in checked} == {"aggregated", "disaggregated"}
    keys = [(not c["simulated_feasible"], c["monthly_usd"]) for c in checked]
    assert keys == sorted(keys)
    for c in checked:
        sim_ttft, sim_tpot = c["ttft_p95_s"]["simulated"], c["tpot_p95_ms"]["simulated"]
        assert c["simulated_feasible"] == (sim_ttft <= 2.0 and sim_tpot <= 50.0 and c["unfinished"] == 0)
    disagreements = [c for c in checked if c["analytic_feasible"] != c["simulated_feasible"]]
    assert len(doc["verify"]["disagreements"]) == len(disagreements)
    table = invoke("solve", sc, "--verify", "3", "--verify-duration", "60")
    assert table.exit_code == 0, table.stderr
    assert "Verified by simulation" in table.stdout and "(disaggregated)" in table.stdout


def test_a_mode_the_scenario_does_not_search_is_bad_input_not_infeasible(invoke):
    """`simulate --mode disaggregated` on a scenario searching aggregated plans only said "no plan
    meets the SLOs" (exit 1) while solve found plans: it is one line naming search.serving_mode, exit 2."""
    from planner import paths

    result = invoke("simulate", str(paths.scenarios_dir() / "chat.toml"), "--mode", "disaggregated",
                    "--set", 'search.serving_mode=["aggregated"]')
    assert result.exit_code == 2, result.output
    assert "--mode disaggregated: search.serving_mode is ['aggregated']" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1



def test_a_prefill_instance_never_keeps_a_turn_waiting_while_it_is_idle(catalog, monkeypatch):
    """A session's next turn is released by the decode replica that finished its reply. An idle
    prefill instance used to jump ahead to its next known arrival, so a turn released meanwhile
    arrived in its past and waited while it was idle: on the prompt-cache study's disaggregated
    plan 67 % of all waiting (TTFT p95 53 s; 6.8 s without it). A prefill instance runs one prompt
    at a time, first come first served: no request may wait while its instance is idle."""
    from planner.cli.simulate_cmd import prepare
    from planner.search import solve
    from planner.simulate import engine, parallel

    admitted: dict[int, tuple[float, float, int]] = {}  # request -> (start, prefill seconds, instance)
    prefill_seconds = engine.Replica._prefill_seconds

    def recorded(self, rid, new, hit, resumed, remote=(0, 0)):
        seconds = prefill_seconds(self, rid, new, hit, resumed, remote)
        if self.role == "prefill":
            admitted[rid] = (self.clock, seconds, self.index)
        return seconds

    monkeypatch.setattr(engine.Replica, "_prefill_seconds", recorded)
    path = "scenarios/studies/prompt-cache-agentic.toml"
    scenario = load_scenario(path, [], catalog)
    best = solve(scenario, catalog).disagg.best_per_mode["disaggregated"]
    job, _ = prepare(scenario, catalog, best, path, duration=600.0, warmup=None, seed=0)
    reqs, _ = parallel.run_job(job)
    rids = np.array(sorted(admitted))
    start, seconds, where = (np.array([admitted[r][i] for r in rids]) for i in range(3))
    arrival = reqs.arrival_s[rids]
    assert len(rids) > 300 and np.all(start >= arrival - 1e-9)
    idle_waiting = 0.0
    for instance in np.unique(where):
        mine = np.flatnonzero(where == instance)
        busy_from, busy_to = start[mine], start[mine] + seconds[mine]
        for i in mine:
            waited = start[i] - arrival[i]
            if waited > 0:
                busy = np.clip(np.minimum(busy_to, start[i]) - np.maximum(busy_from, arrival[i]), 0.0, None).sum()
                idle_waiting += max(waited - busy, 0.0)
    assert idle_waiting < 1e-3
