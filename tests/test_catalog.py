"""The catalogs against their contract: coverage, prices, a citation for every number, strictness."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import HARDWARE_TOML, REQUIRED_HARDWARE, REQUIRED_MODELS, hardware_files, ids

from planner import catalog as catalog_module
from planner import io, paths, render
from planner.catalog import load_catalog
from planner.errors import InputFileError, UnknownIdError
from planner.schema import HardwareFile, ModelsFile
from planner.schema.hardware import SOURCED_FIELDS
from planner.schema.models import SOURCED_MODEL_FIELDS


@pytest.mark.parametrize("path", hardware_files(), ids=ids(hardware_files()))
def test_hardware_file_prices_and_cites_every_number(path: Path) -> None:
    parsed = io.load(HardwareFile, path)
    assert parsed.accelerator, f"{path.name} defines no accelerator"
    for acc in parsed.accelerator:
        assert acc.usd_per_hour > 0 and acc.price_provider.strip() and acc.price_date
        assert "usd_per_hour" in acc.sources
        for field in SOURCED_FIELDS:
            if getattr(acc, field) is None:
                continue
            key = acc.sources.get(field)
            assert key, f"{acc.id}.{field} has no source"
            assert parsed.sources.get(key, "").strip(), f"{acc.id}.{field}: source '{key}' has no citation"
        for api in acc.api_prices:
            assert parsed.sources.get(api.source, "").strip()


@pytest.mark.parametrize("path", hardware_files(), ids=ids(hardware_files()))
def test_dense_peaks_grow_as_precision_shrinks(path: Path) -> None:
    # A sparse figure typed in place of a dense one usually breaks this ordering.
    for acc in io.load(HardwareFile, path).accelerator:
        peaks = [acc.peak_tflops(d) for d in ("bf16", "fp8", "fp4")]
        known = [p for p in peaks if p is not None]
        assert known == sorted(known), f"{acc.id}: bf16 <= fp8 <= fp4 expected, got {peaks}"


def test_catalog_covers_the_required_hardware() -> None:
    cat = load_catalog()
    assert len(cat.hardware) >= 24
    missing = [i for i in REQUIRED_HARDWARE if i not in cat.hardware]
    assert not missing, f"required hardware IDs missing: {missing}"
    assert any(a.family == "gaudi" or a.id.startswith("gaudi") for a in cat.hardware.values())
    for acc in cat.hardware.values():
        assert acc.family in cat.calibration
        assert acc.memory_gb > 0 and acc.memory_gbps > 0


def test_sram_only_chips_are_marked_as_such() -> None:
    cat = load_catalog()
    for hw_id in ("groq-lpu", "cerebras-wse3"):
        acc = cat.accelerator(hw_id)
        assert acc.hbm_gb == 0 and acc.hbm_gbps == 0
        assert acc.memory_gb == pytest.approx(float(acc.sram_mb) / 1000)


def test_catalog_covers_the_required_models() -> None:
    cat = load_catalog()
    assert len(cat.models) >= 12
    missing = [i for i in REQUIRED_MODELS if i not in cat.models]
    assert not missing, f"required model IDs missing: {missing}"
    for moe in ("mixtral-8x7b", "qwen3-235b-a22b", "qwen3-30b-a3b", "deepseek-v3"):
        assert cat.model(moe).is_moe
    assert cat.model("deepseek-v3").attention == "mla"


def test_every_model_number_cites_a_source() -> None:
    models = io.load(ModelsFile, paths.models_file())
    for spec in models.model:
        for field in SOURCED_MODEL_FIELDS:
            if getattr(spec, field) is None:
                continue
            key = spec.sources.get(field)
            assert key and models.sources.get(key, "").strip(), f"{spec.id}.{field} cites nothing"


@pytest.mark.parametrize(
    ("model_id", "kv_bytes"),
    [
        ("llama-3.1-8b", 32 * 2 * 8 * 128 * 2),  # 128 KiB/token
        ("llama-3.1-70b", 80 * 2 * 8 * 128 * 2),  # 320 KiB/token
        ("mixtral-8x7b", 32 * 2 * 8 * 128 * 2),
        ("deepseek-v3", 61 * (512 + 64) * 2),  # MLA latent + RoPE key: ~69 KiB/token
    ],
)
def test_kv_bytes_per_token_matches_published_geometry(model_id: str, kv_bytes: int) -> None:
    assert render.kv_bytes_per_token(load_catalog().model(model_id)) == kv_bytes
    assert render.kv_bytes_per_token(load_catalog().model(model_id), "fp8") == kv_bytes // 2


@pytest.mark.parametrize(
    ("lookup", "wrong", "expected"),
    [("accelerator", "h100", "h100-sxm"), ("accelerator", "mi300", "mi300x"),
     ("model", "llama-3.1-7b", "llama-3.1-8b"), ("model", "deepseek-v2", "deepseek-v3"),
     ("accelerator", "h200", "h200-sxm"), ("accelerator", "B200", "b200"), ("model", "qwen3-coder", "qwen3-coder-480b-a35b")],
)
def test_unknown_ids_list_the_closest_matches(lookup: str, wrong: str, expected: str) -> None:
    with pytest.raises(UnknownIdError) as err:
        getattr(load_catalog(), lookup)(wrong)
    message = str(err.value)
    assert f"'{wrong}'" in message and f"'{expected}'" in message and "\n" not in message



@pytest.mark.parametrize(("repo", "expected"), [("meta-llama/Meta-Llama-3-70B", "llama-3-70b"),
                                                ("META-LLAMA/llama-3.1-70b", "llama-3.1-70b"),
                                                ("openai/gpt-oss-20b", "gpt-oss-20b")])
def test_a_hugging_face_repo_names_its_catalog_model(repo: str, expected: str) -> None:
    # measurements and users name models by their repo (the public Gaudi 2 and Trainium Llama 3 rows do)
    assert load_catalog().model(repo).id == expected


def test_an_unknown_repo_is_still_an_unknown_model() -> None:
    with pytest.raises(UnknownIdError, match="unknown model ID 'meta-llama/Llama-9-1T'"):
        load_catalog().model("meta-llama/Llama-9-1T")

# ---------------------------------------------------------------- strictness of the hardware schema


def test_fixture_hardware_file_is_valid(write: Callable[[str, str], Path]) -> None:
    parsed = io.load(HardwareFile, write("hw.toml", HARDWARE_TOML))
    assert [a.id for a in parsed.accelerator] == ["test-gpu"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("hbm_gb = 80\n", "hbm_gb = 0\n", "hbm_gb and hbm_gbps must both be 0", id="inconsistent-tiers"),
        pytest.param('power_w = "ds"\n', "", "field 'power_w' has no entry in sources", id="number-without-source"),
        pytest.param("hbm_gbps = 3350\n", "hbm_gbps = 3350\nhbm_tbps = 3.35\n", "accelerator.0.hbm_tbps: unknown key",
                     id="unknown-key"),
        pytest.param('power_w = "ds"\n', 'power_w = "nowhere"\n', "'nowhere' is not defined", id="undefined-source"),
        pytest.param('price_kind = "on-demand"', 'price_kind = "estimate"', "price_method", id="estimate-without-method"),
        pytest.param("hbm_gb = 80\nhbm_gbps = 3350\n", "hbm_gb = 0\nhbm_gbps = 0\n", "sram_mb", id="no-memory-at-all"),
        pytest.param('id = "test-gpu"', 'id = "Test_GPU"', "kebab-case", id="bad-id"),
        pytest.param("bf16_tflops = 989", 'bf16_tflops = "fast"', "accelerator.0.bf16_tflops", id="wrong-type"),
        pytest.param('price_date = "2025-01"\n', 'price_date = "2025-01"\ncapex_usd = 30000\n',
                     "capex_usd needs capex_kind and capex_date", id="capex-without-kind"),
        pytest.param('price_date = "2025-01"\n',
                     'price_date = "2025-01"\ncapex_usd = 30000\ncapex_kind = "estimate"\ncapex_date = "2025-01"\n',
                     "capex_method", id="capex-estimate-without-method"),
        pytest.param('price_date = "2025-01"\n',
                     'price_date = "2025-01"\ncapex_usd = 30000\ncapex_kind = "street"\ncapex_date = "2025-01"\n',
                     "field 'capex_usd' has no entry in sources", id="capex-without-source"),
    ],
)
def test_bad_hardware_files_are_rejected(write: Callable[[str, str], Path], old: str, new: str,
                                         expected: str) -> None:
    assert old in HARDWARE_TOML
    path = write("bad.toml", HARDWARE_TOML.replace(old, new, 1))
    with pytest.raises(InputFileError) as err:
        io.load(HardwareFile, path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_duplicate_ids_across_files_are_rejected(tmp_path: Path) -> None:
    hw_dir = tmp_path / "hardware"
    hw_dir.mkdir()
    for name in ("a.toml", "b.toml"):
        (hw_dir / name).write_text(HARDWARE_TOML)
    for name in ("calibration.toml", "host-tiers.toml"):
        (hw_dir / name).write_text((paths.hardware_dir() / name).read_text())
    with pytest.raises(InputFileError, match="'test-gpu' is also defined in"):
        catalog_module._load_bundled.__wrapped__(hw_dir, paths.models_file())


def test_families_without_measurements_run_on_their_named_fitted_family() -> None:
    """A prior family's unset knobs are its parent's current values (mechanisms included), so a refit
    of the parent moves it too; what it sets itself stays its own."""
    cat = load_catalog()
    for child, parent in (("cdna4", "cdna3"), ("ampere", "hopper"), ("ada", "hopper")):
        kid, dad = cat.calibration[child], cat.calibration[parent]
        assert kid.prior_from == parent and not kid.fitted and dad.fitted
        assert kid.calibrated_from.startswith("prior:")
        for knob in ("layer_latency_us", "activation_passes", "hbm_efficiency", "step_overhead_ms"):
            assert getattr(kid, knob) == getattr(dad, knob), (child, knob)
    assert cat.calibration["ada"].collective_latency_us == 50.0  # its own: PCIe-only all-reduces
    assert cat.calibration["hopper"].collective_latency_us != 50.0
    # a family with few cases fits a few knobs and takes the rest: its fitted values stay its own
    blackwell, hopper = cat.calibration["blackwell"], cat.calibration["hopper"]
    assert blackwell.prior_from == "hopper" and blackwell.fitted
    assert all(k not in blackwell.fitted for k in ("activation_passes", "moe_layer_latency_us", "attention_efficiency"))
    assert blackwell.activation_passes == hopper.activation_passes
    assert blackwell.moe_layer_latency_us == hopper.moe_layer_latency_us
    assert blackwell.layer_latency_us != hopper.layer_latency_us


def _calibration_dir(tmp_path: Path, edit: Callable[[str], str]) -> Path:
    hw_dir = tmp_path / "hardware"
    hw_dir.mkdir()
    (hw_dir / "a.toml").write_text(HARDWARE_TOML)
    (hw_dir / "host-tiers.toml").write_text((paths.hardware_dir() / "host-tiers.toml").read_text())
    (hw_dir / "calibration.toml").write_text(edit((paths.hardware_dir() / "calibration.toml").read_text()))
    return hw_dir


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda t: t.replace('prior_from = "cdna3"', 'prior_from = "cdna9"'),
     "family 'cdna4'.prior_from: no family 'cdna9'"),
    (lambda t: t.replace('id = "ampere"\nprior_from = "hopper"', 'id = "ampere"\nprior_from = "cdna4"'),
     "family 'ampere'.prior_from: 'cdna4' itself takes its priors from 'cdna3'"),
])
def test_a_bad_prior_family_is_one_line_naming_the_file_and_field(tmp_path: Path, edit, expected) -> None:
    hw_dir = _calibration_dir(tmp_path, edit)
    with pytest.raises(InputFileError) as err:
        catalog_module._load_bundled.__wrapped__(hw_dir, paths.models_file())
    message = str(err.value)
    assert message.startswith(f"{hw_dir / 'calibration.toml'}: ") and expected in message and "\n" not in message


def test_a_calibration_with_the_replaced_moe_knob_is_told_how_to_convert_it():
    """moe_efficiency_lowp (one efficiency for every quantised expert GEMM) gave way to
    moe_quant_overhead; a file that still sets it gets the conversion, not just "extra key"."""
    from planner.schema.hardware import CalibrationFile

    raw = io.read_toml(paths.hardware_dir() / "calibration.toml")
    family = next(f for f in raw["family"] if f["id"] == "blackwell")
    family.pop("moe_quant_overhead_fp4")
    family["moe_efficiency_lowp"] = 0.35
    with pytest.raises(InputFileError, match=r"moe_efficiency_lowp was replaced by moe_quant_overhead: set "
                                             r"moe_quant_overhead = \(1 / moe_efficiency_lowp - 1 / moe_efficiency\)"):
        io.validate(CalibrationFile, raw, "calibration.toml")
