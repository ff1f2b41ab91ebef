"""Periphery (DAC, ADC, output noise, tiles, IR drop) at every MVM, and per-column / noisy-reference drift
compensation: exact quantizers, statistics on ≥ 1e5 draws with fixed seeds, golden IR-drop values, the
one-line validation errors, and bit-identity of every profile without a periphery."""

import hashlib
import math

import pytest
import torch
import yaml
from torch import nn

from noisesim import devices
from noisesim.devices.periphery import PERIPHERY, calibrated_range, levels, quantize
from noisesim.devices.profile import Profile
from noisesim.engine.grid import random_stages
from noisesim.engine.program import ProgrammedWeights
from noisesim.errors import UserError
from noisesim.methods.base import FrozenLinear
from noisesim.seeds import generator

N = 100_000  # draws per statistical test


def periphery_profile(periphery: dict, noise=(), mapping=None) -> Profile:
    return Profile({"noise": list(noise), "periphery": periphery, **({"mapping": mapping} if mapping else {})},
                   "<test>")


def hooked(periphery: dict, weight: torch.Tensor, bias: torch.Tensor | None = None, mapping=None, read=None,
           seed: int = 0):
    """A linear layer holding ``weight`` whose MVMs run through ``periphery``."""
    prof = periphery_profile(periphery, mapping=mapping)
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    lin.weight.data = weight.clone()
    if bias is not None:
        lin.bias.data = bias.clone()
    hook = prof.periphery.attach(lin, weight, prof.spec.mapping, generator(seed, "read", "periphery"), read,
                                 generator(seed, "read", "runtime"))
    return lin, hook


def run(lin: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return lin(x)


# --- quantizers: exact ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 8, 12])
def test_quantizer_hits_every_level_and_clips(bits):
    n = levels(bits)
    assert n == 2 ** (bits - 1) - 1
    k = torch.arange(-n, n + 1, dtype=torch.float32)
    bound = float(n)  # Δ = 1: every level and every half-way point is exact in float32
    assert torch.equal(quantize(k, bound, bits), k)  # every level maps to itself: 2^bits − 1 of them
    inside = k[:-1] + 0.49
    assert torch.equal(quantize(inside, bound, bits), k[:-1])
    assert torch.equal(quantize(k[1:] - 0.49, bound, bits), k[1:])
    far = torch.tensor([n + 0.2, n + 7.0, 1e30, -n - 0.2, -1e30, math.inf, -math.inf])
    assert torch.equal(quantize(far, bound, bits), torch.tensor([n, n, n, -n, -n, n, -n], dtype=torch.float32))
    # a bound that is not a power of two: level k·bound/L reproduces itself exactly
    step = 0.3 / n
    grid = torch.arange(-n, n + 1, dtype=torch.float32) * step
    assert torch.equal(quantize(grid, 0.3, bits), grid)
    assert len(torch.unique(quantize(torch.linspace(-1, 1, 100_001), 0.3, bits))) == 2 * n + 1


def test_quantizer_ties_round_half_to_even():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002])
    got = quantize(x, 3.0, 3)  # L = 3, Δ = 1
    assert got.tolist() == [0.0, 2.0, 2.0, -0.0, -2.0, -2.0, 0.0, 3.0]
    assert torch.equal(quantize(torch.tensor([0.25, 0.75]), torch.tensor([1.5]), 3), torch.tensor([0.0, 1.0]))


def test_calibrated_ranges_max_and_nearest_rank_percentile():
    v = torch.arange(1, 101, dtype=torch.float32) * torch.tensor([1.0, -1.0]).repeat(50)
    assert calibrated_range(v, "max", 100.0).item() == 100.0
    assert calibrated_range(v, "percentile", 99.0).item() == 99.0  # ⌈0.99·100⌉ = 99th smallest |v|
    assert calibrated_range(v, "percentile", 99.5).item() == 100.0
    assert calibrated_range(v, "percentile", 50.0).item() == 50.0
    cols = torch.stack([v, 2 * v], dim=1)
    assert calibrated_range(cols, "max", 100.0, dim=0).tolist() == [[100.0, 200.0]]
    assert calibrated_range(torch.zeros(5), "max", 100.0).item() == torch.finfo(torch.float32).tiny


# --- DAC and ADC at every MVM ----------------------------------------------------------------------------------


def test_dac_fixed_and_calibrated_quantizes_every_input():
    w = torch.randn(6, 10, generator=generator(0, "w"))
    b = torch.randn(6, generator=generator(1, "w"))
    x = torch.randn(4, 7, 10, generator=generator(2, "x"))
    lin, _ = hooked({"dac": {"bits": 4, "range": 1.4}}, w, b)
    torch.testing.assert_close(run(lin, x), nn.functional.linear(quantize(x, 1.4, 4), w, b), rtol=0, atol=1e-6)
    lin, hook = hooked({"dac": {"bits": 6}}, w, b)  # calibrate: max on the first MVM, then held
    run(lin, x)
    assert hook.input_range.item() == x.abs().max().item()
    bigger = 3 * x
    torch.testing.assert_close(run(lin, bigger), nn.functional.linear(quantize(bigger, x.abs().max(), 6), w, b),
                               rtol=0, atol=1e-6)
    lin, hook = hooked({"dac": {"bits": 6, "calibrate": "percentile", "percentile": 90}}, w, b)
    run(lin, x)
    mags = x.abs().flatten().sort().values
    assert hook.input_range.item() == mags[math.ceil(0.9 * mags.numel()) - 1].item()


@pytest.mark.parametrize("per", ["column", "tile"])
def test_adc_calibrated_per_column_or_tile_quantizes_and_saturates(per):
    w = torch.randn(6, 10, generator=generator(0, "w"))
    x = torch.randn(50, 10, generator=generator(2, "x"))
    lin, hook = hooked({"adc": {"bits": 5, "per": per}}, w)
    y = x @ w.t()
    r = y.abs().amax(0) if per == "column" else y.abs().max().expand(6)
    assert torch.equal(run(lin, x), quantize(y, r, 5))
    assert torch.equal(hook.output_range.reshape(-1), r)
    # a later, larger input saturates at ±R: the range is held from the first MVM
    assert torch.equal(run(lin, 10 * x).abs().amax(0), r)


def test_empty_batches_and_other_dtypes():
    w = torch.randn(6, 10, generator=generator(0, "w"))
    lin, hook = hooked({"dac": {"bits": 8}, "adc": {"bits": 8}, "ir_drop": {}}, w)
    assert run(lin, torch.zeros(0, 10)).shape == (0, 6) and hook.input_range is None  # no calibration on nothing
    x = torch.randn(5, 10, generator=generator(1, "x"))
    want = run(lin, x)
    lin64, _ = hooked({"dac": {"bits": 8}, "adc": {"bits": 8}, "ir_drop": {}}, w.double())
    torch.testing.assert_close(run(lin64.double(), x.double()).float(), want, rtol=0, atol=1e-5)


def test_adc_fixed_range_and_the_digital_bias():
    w = torch.tensor([[1.0, 2.0], [-3.0, 0.5]])
    b = torch.tensor([0.25, -10.0])
    lin, _ = hooked({"adc": {"bits": 3, "range": 3.0}}, w, b)  # levels −3 … 3, step 1
    x = torch.tensor([[0.6, 0.0], [1.0, 1.0], [0.2, 0.2]])
    # analog y = [[0.6, -1.8], [3, -2.5], [0.6, -0.5]] → ADC → + bias (not quantized)
    assert run(lin, x).tolist() == [[1.25, -12.0], [3.25, -12.0], [1.25, -10.0]]


# --- output noise: statistics against the formula --------------------------------------------------------------


@pytest.mark.parametrize("fixed", [True, False])
def test_output_noise_is_sigma_times_the_adc_range(fixed):
    w = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
    x = torch.ones(N, 1)
    adc = {"bits": 24, "range": 8.0} if fixed else {"bits": 24}
    def layer(seed):
        lin, hook = hooked({"adc": adc, "output_noise": {"sigma": 0.05}}, w, seed=seed)
        run(lin, torch.full((1, 1), 4.0))  # the first MVM calibrates: R = 4·|w_j| (no saturation below)
        return lin, hook
    lin, hook = layer(3)
    y = run(lin, x)
    err = y - x @ w.t()
    r = torch.full((4,), 8.0) if fixed else hook.output_range.reshape(-1)
    if not fixed:  # calibrated on the first batch's noise-free partial sums
        assert torch.equal(r, 4 * w.abs().reshape(-1))
    expected = 0.05 * r
    assert (err.mean(0).abs() < 4 * expected / math.sqrt(N)).all()
    assert ((err.std(0) / expected - 1).abs() < 0.01).all()
    assert abs((err.abs() < expected).float().mean().item() - 0.6827) < 0.005
    again, other = layer(3)[0], layer(4)[0]
    assert torch.equal(run(again, x), y)  # same seed, same draws
    assert not torch.equal(run(other, x), y)


def test_per_mvm_read_noise_is_added_per_tile_with_the_same_variance():
    var = torch.tensor([[1e-4], [4e-4], [9e-4]])  # per output σ_j² (weight units)
    w = torch.randn(3, 64, generator=generator(0, "w")) * 0.1
    x = torch.ones(N, 64)
    read = devices.RuntimeRead("mvm", var)
    for tile in (None, {"rows": 16, "cols": 2}, {"rows": 24, "cols": 3}):
        periphery = {"tile": tile} if tile else {"adc": {"bits": 24, "range": 100.0}}
        lin, _ = hooked(periphery, w, read=read)
        err = run(lin, x) - x @ w.t()
        expected = var.sqrt().reshape(-1) * 8.0  # σ_j·‖x‖, ‖x‖ = 8
        assert ((err.std(0) / expected - 1).abs() < 0.01).all(), tile


# --- tiles -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("adc", [None, {"bits": 24}, {"bits": 24, "per": "tile"}])
def test_tiled_layer_with_infinite_resolution_equals_the_untiled_layer(adc):
    w = torch.randn(24, 40, generator=generator(0, "w")) * 0.1
    b = torch.randn(24, generator=generator(1, "w"))
    x = torch.randn(3, 5, 40, generator=generator(2, "x"))
    plain = nn.functional.linear(x, w, b)
    for tile in ({"rows": 16, "cols": 10}, {"rows": 40, "cols": 24}, {"rows": 7, "cols": 1}, {"rows": 1000,
                                                                                               "cols": 1000}):
        lin, hook = hooked({"tile": tile, **({"adc": adc} if adc else {})}, w, b)
        got = run(lin, x)
        assert got.shape == plain.shape
        torch.testing.assert_close(got, plain, rtol=0, atol=1e-5)
        assert hook.n_row_tiles == -(-40 // min(tile["rows"], 40))


def test_each_tile_has_its_own_adc_range():
    w = torch.zeros(4, 6)
    w[:, :3] = 1.0  # rows 0–2 (tile 0) carry large partial sums
    w[:, 3:] = 0.01  # rows 3–5 (tile 1) small ones
    w[2:, :] *= 2  # and columns 2, 3 twice those of 0, 1
    x = torch.ones(1, 6)
    lin, hook = hooked({"tile": {"rows": 3, "cols": 2}, "adc": {"bits": 4, "per": "tile"}}, w)
    run(lin, x)
    assert hook.output_range.reshape(-1).tolist() == pytest.approx([3, 3, 6, 6, 0.03, 0.03, 0.06, 0.06])
    lin, hook = hooked({"tile": {"rows": 3, "cols": 2}, "adc": {"bits": 4, "per": "column"}}, w)
    run(lin, x)
    assert hook.output_range.shape == (2, 1, 4)
    # the output is the sum of each tile's own quantized partial sum
    parts = [x[:, :3] @ w[:, :3].t(), x[:, 3:] @ w[:, 3:].t()]
    lin, hook = hooked({"tile": {"rows": 3, "cols": 2}, "adc": {"bits": 4, "per": "tile"}}, w)
    got = run(lin, x)
    want = sum(quantize(p, r, 4) for p, r in zip(parts, hook.output_range[:, 0], strict=True))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


# --- IR drop ---------------------------------------------------------------------------------------------------


def ir_reference(x, w, rows, ratio, scale, r_in, full_scale):
    """The documented formula in float64, one tile at a time (an independent implementation)."""
    x, w = x.double(), w.double()
    y = x @ w.t()
    for start in range(0, w.shape[1], rows):
        sl = slice(start, min(start + rows, w.shape[1]))
        n = sl.stop - sl.start
        a = n * ((x[:, sl].abs() / r_in) @ (w[:, sl].abs() / full_scale).t()) / ratio
        c = a * (a * (0.05 * a - 0.2) + 0.5)
        pos = 1 - (1 - torch.arange(n, dtype=torch.float64) / n) ** 2
        y -= scale * c * ((x[:, sl] * pos) @ w[:, sl].t())
    return y


def test_ir_drop_golden_value():
    """n = 4 rows, w = x = 1, g_ratio = 1/(2500 Ω · 25 µS) = 16: a = 4·4/16 = 1, c(1) = 0.35, Σ position
    factors = 0 + 0.4375 + 0.75 + 0.9375 = 2.125, so y = 4 − 0.35·2.125 = 3.25625."""
    lin, _ = hooked({"ir_drop": {"wire_resistance": 2500.0}}, torch.ones(1, 4), mapping={"g_max": 25.0})
    assert run(lin, torch.ones(1, 4)).item() == pytest.approx(3.25625, abs=1e-6)
    lin, _ = hooked({"ir_drop": {"wire_resistance": 2500.0, "scale": 2.0}}, torch.ones(1, 4), mapping={"g_max": 25.0})
    assert run(lin, torch.ones(1, 4)).item() == pytest.approx(4 - 2 * 0.74375, abs=1e-6)
    lin, _ = hooked({"ir_drop": {"wire_resistance": 0.0}}, torch.ones(1, 4))
    assert run(lin, torch.ones(1, 4)).item() == 4.0


def test_ir_drop_matches_the_formula_on_many_inputs():
    w = torch.randn(8, 300, generator=generator(0, "w")) * 0.05
    x = torch.rand(N // 8, 300, generator=generator(1, "x")) * 2 - 0.5  # 1e5 outputs
    for tile, mapping in ((None, {"g_max": 25.0}), ({"rows": 128, "cols": 8}, {"g_max": 10.0, "scale": "column"})):
        periphery = {"ir_drop": {"wire_resistance": 50.0, "scale": 1.5}, **({"tile": tile} if tile else {})}
        lin, hook = hooked(periphery, w, mapping=mapping)
        got = run(lin, x)
        fs = w.abs().amax(1, keepdim=True).double() if mapping.get("scale") == "column" else w.abs().max().double()
        ratio = 1 / (50.0 * mapping["g_max"] * 1e-6)
        want = ir_reference(x, w, tile["rows"] if tile else 300, ratio, 1.5, x.abs().max().double(), fs)
        assert (want - x.double() @ w.double().t()).abs().mean() > 1e-3  # the drop is not negligible
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-5)


def test_ir_drop_grows_with_current_and_distance_from_the_output():
    w = torch.full((1, 64), 0.5)
    prof = {"ir_drop": {"wire_resistance": 20.0}, "dac": {"bits": 24, "range": 1.0}}
    rel = []
    for j in (0, 16, 32, 63):  # one-hot inputs: same current, rows ever closer to the output
        x = torch.zeros(1, 64)
        x[0, j] = 1.0
        lin, _ = hooked(prof, w)
        rel.append(1 - run(lin, x).item() / 0.5)
    assert rel[0] == pytest.approx(0, abs=1e-7) and rel == sorted(rel) and rel[-1] > 0
    drops = []
    for level in (0.25, 0.5, 1.0):  # all rows driven: more current, larger relative drop
        lin, _ = hooked(prof, w)
        x = torch.full((1, 64), level)
        drops.append(1 - run(lin, x).item() / (64 * 0.5 * level))
    assert drops == sorted(drops) and drops[0] > 0


# --- per-column drift compensation -----------------------------------------------------------------------------


PCM_PROG = {"programming": {"coefficients": [0.26348, 1.965, -1.1731], "reference_g_max": 25.0}}


def drift_profile(compensation: str, read_noise: bool = False, reads: int = 0) -> Profile:
    drift = {"t0": "20s", "compensation": compensation,
             **({"read_noise": {"q": 0.0088}} if read_noise else {}), **({"reference_reads": reads} if reads else {})}
    return Profile({"mapping": {"g_max": 25.0, "scale": "column"}, "noise": [PCM_PROG, {"drift": drift}]}, "<t>")


@pytest.mark.parametrize("read_noise", [False, True])
def test_column_compensation_restores_each_columns_mean_output_at_t(read_noise):
    w = torch.randn(64, 200, generator=generator(0, "w")) * torch.linspace(0.01, 0.1, 64).unsqueeze(1)
    one_hot = torch.eye(200)  # reference inputs: the mean |output| of column j over them is mean_i |w_ji|
    def column_means(prof, t):
        return (one_hot @ prof.realize(w, t=t, program=1, layer="l").weight.t()).abs().mean(0)
    for t in (86400.0, 3.15e7):
        at_0 = column_means(drift_profile("none"), 0.0)  # right after programming: no drift yet
        col = column_means(drift_profile("column", read_noise), t)
        glob = column_means(drift_profile("global", read_noise), t)
        raw = column_means(drift_profile("none", read_noise), t)
        torch.testing.assert_close(col, at_0, rtol=1e-5, atol=0)
        assert ((raw / at_0) < 0.9).all()  # drift lowered every column
        assert ((glob / at_0 - 1).abs().max() > 1e-3)  # one scale per layer cannot restore every column
        assert glob.mean().item() == pytest.approx(at_0.mean().item(), rel=1e-5)


@pytest.mark.parametrize("compensation", ["global", "column"])
def test_noisy_reference_reads_scatter_around_the_exact_compensation(compensation):
    """Reference reads through the profile's per-MVM read noise (σ = 2 % of g_max per device): the exact
    compensation is the same for every read index, the noisy one scatters around it, as 1/√N for N reads,
    and the evaluation's own draws are those of the exact profile."""
    w = torch.randn(32, 100, generator=generator(0, "w")) * 0.05
    read = {"read": {"sigma": 0.02, "per": "mvm"}}
    def prof(reads):
        drift = {"t0": "20s", "compensation": compensation, **({"reference_reads": reads} if reads else {})}
        return Profile({"mapping": {"g_max": 25.0, "scale": "column"}, "noise": [PCM_PROG, {"drift": drift}, read]},
                       "<t>")
    exact = prof(0).realize(w, t=3.15e7, program=1, layer="l").weight
    spread = {}
    for reads in (1, 16):
        noisy = prof(reads)
        ratios = []
        for r in range(40):
            b = noisy.realize(w, t=3.15e7, program=1, read=r, layer="l").weight
            ratio = b.abs().sum(1) / exact.abs().sum(1)  # α_noisy/α_exact per column
            torch.testing.assert_close(b, exact * ratio.unsqueeze(1), rtol=1e-5, atol=1e-9)
            ratios.append(ratio)
        ratios = torch.stack(ratios)
        assert (ratios.mean() - 1).abs() < 0.02  # close to the exact compensation
        spread[reads] = ratios.std(0).mean().item()
        assert spread[reads] > 0
    assert 3.0 < spread[1] / spread[16] < 5.3  # ≈ √16: the mean of N reads
    for rel in (exact, prof(0).realize(w, t=3.15e7, program=1, read=7, layer="l").weight):
        assert torch.equal(rel, exact)  # exact reads: no read-index dependence


# pcm's description before it got a periphery: with it, pcm-ideal-periphery's spec is the old pcm's byte for byte
OLD_PCM = {"name": "pcm", "description": "IBM PCM statistical model (Nandakumar et al. 2019; Joshi et al. 2020), as"
                                         " in aihwkit."}


def test_compensation_spec_keeps_old_hashes_and_validates():
    old = devices.load_profile("pcm-ideal-periphery").spec.model_copy(update=OLD_PCM)
    dumped = old.model_dump_json(serialize_as_any=True)
    assert "reference_reads" not in dumped and "periphery" not in dumped
    assert hashlib.sha256(dumped.encode()).hexdigest()[:16] == "e82e2879eeb172dd"  # recorded before this change
    pcm = devices.load_profile("pcm")
    col = pcm.with_values({"drift.compensation": "column", "drift.reference_reads": 4})
    assert "reference_reads" in col.spec.model_dump_json(serialize_as_any=True)
    with pytest.raises(UserError, match=r"noise\[1\].drift: reference_reads needs compensation"):
        pcm.with_values({"drift.compensation": "none", "drift.reference_reads": 2})
    with pytest.raises(UserError, match=r"drift.compensation: Input should be 'none', 'global' or 'column'"):
        pcm.with_values({"drift.compensation": "row"})
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(UserError, match=r"drift.reference_reads"):
            pcm.with_values({"drift.reference_reads": bad})


# --- validation: one-line errors -------------------------------------------------------------------------------


BAD = [
    ({"adc": {"bits": 0}}, ["periphery.adc.bits", "greater than or equal to 2", "allowed: 2 to 24 bits"]),
    ({"adc": {"bits": -3}}, ["periphery.adc.bits", "greater than or equal to 2"]),
    ({"dac": {"bits": 25}}, ["periphery.dac.bits", "less than or equal to 24"]),
    ({"dac": {"bits": math.nan}}, ["periphery.dac.bits", "valid integer"]),
    ({"dac": {"bits": "8"}}, ["periphery.dac.bits", "valid integer", "'8'"]),
    ({"dac": {"bits": 8.5}}, ["periphery.dac.bits", "valid integer"]),
    ({"dac": {}}, ["periphery.dac.bits", "Field required"]),
    ({"adc": {"bits": 8, "range": -1.0}}, ["periphery.adc.range", "greater than or equal to 1e-12"]),
    ({"adc": {"bits": 8, "range": math.nan}}, ["periphery.adc.range", "finite"]),
    ({"adc": {"bits": 8, "range": math.inf}}, ["periphery.adc.range", "finite"]),
    ({"adc": {"bits": 8, "range": "big"}}, ["periphery.adc.range", "'big'"]),
    ({"adc": {"bits": 8, "range": 2.0, "calibrate": "max"}}, ["periphery.adc", "fixed range or calibrate"]),
    ({"adc": {"bits": 8, "percentile": 99.0}}, ["periphery.adc", "percentile needs calibrate: percentile"]),
    ({"adc": {"bits": 8, "calibrate": "percentile", "percentile": 20}}, ["periphery.adc.percentile",
                                                                         "allowed: 50 to 100"]),
    ({"adc": {"bits": 8, "calibrate": "mean"}}, ["periphery.adc.calibrate", "'max' or 'percentile'"]),
    ({"adc": {"bits": 8, "per": "row"}}, ["periphery.adc.per", "'column' or 'tile'"]),
    ({"adc": {"bits": 8, "bitz": 8}}, ["periphery.adc.bitz", "unknown key", "did you mean 'bits'",
                                       "allowed: bits, range"]),
    ({"adcc": {"bits": 8}}, ["periphery.adcc", "unknown key", "did you mean 'adc'", "allowed: tile, dac"]),
    ({"output_noise": {"sigma": 0.01}}, ["periphery", "relative to the ADC range", "add an adc"]),
    ({"output_noise": {"sigma": -0.01}, "adc": {"bits": 8}}, ["periphery.output_noise.sigma",
                                                             "greater than or equal to 0"]),
    ({"tile": {"rows": 0, "cols": 256}}, ["periphery.tile.rows", "greater than or equal to 1"]),
    ({"tile": {"rows": 256}}, ["periphery.tile.cols", "Field required"]),
    ({"ir_drop": {"wire_resistance": -0.35}}, ["periphery.ir_drop.wire_resistance", "allowed: 0 to 1e+06 Ω"]),
    ({"ir_drop": {"scale": math.nan}}, ["periphery.ir_drop.scale", "finite"]),
]


@pytest.mark.parametrize("periphery,fragments", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_periphery_values_are_one_line_user_errors(tmp_path, periphery, fragments):
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump({"name": "bad", "periphery": periphery}))
    with pytest.raises(UserError) as info:
        devices.load_profile(file)
    message = str(info.value)
    assert message.startswith(f"{file}: periphery") and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_periphery_must_be_a_mapping_and_ideal_cannot_have_one():
    with pytest.raises(UserError, match="<t>: periphery: Input should be a valid dictionary"):
        Profile({"periphery": [1]}, "<t>")
    with pytest.raises(UserError, match="'ideal' must be noise-free"):
        Profile({"name": "ideal", "periphery": {"adc": {"bits": 8}}}, "<t>")
    assert list(PERIPHERY) == ["tile", "dac", "ir_drop", "output_noise", "adc"]


def test_set_paths_reach_the_periphery_and_the_grid_counts_its_draws():
    base = devices.load_profile("rram")
    prof = base.with_values({"periphery.adc.bits": 6, "periphery.output_noise.sigma": 0.02})
    assert prof.spec.periphery.adc.bits == 6 and prof.spec.periphery.output_noise.sigma == 0.02
    assert "read" in random_stages(prof) and not prof.noiseless
    quiet = Profile({"name": "adc-only"}, "<t>").with_values({"periphery.adc.bits": 8})
    assert random_stages(quiet) == set() and not quiet.noiseless  # deterministic, but not the clean reference
    with pytest.raises(UserError, match=r"periphery.adc.bits: Input should be greater than or equal to 2"):
        prof.with_values({"periphery.adc.bits": 1})
    assert prof.with_values({"periphery.output_noise": None}).spec.periphery.output_noise is None


# --- seeds and bit-identity through the engine's programming ---------------------------------------------------


def tiny_model() -> nn.Sequential:
    g = torch.Generator().manual_seed(3)
    layers = []
    for out_f, in_f in ((24, 40), (16, 24)):
        lin = nn.Linear(in_f, out_f)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(out_f, in_f, generator=g) * 0.1)
            lin.bias.copy_(torch.randn(out_f, generator=g) * 0.1)
        layers.append(FrozenLinear(lin))
    return nn.Sequential(*layers)


FULL = {"tile": {"rows": 16, "cols": 8}, "dac": {"bits": 6}, "ir_drop": {"wire_resistance": 5.0},
        "output_noise": {"sigma": 0.02}, "adc": {"bits": 7, "per": "column", "calibrate": "percentile"}}


def forward_all(prof, x, runs=(dict(), dict(chip=1, read=2, seed=5))) -> list[torch.Tensor]:
    model = tiny_model()
    adapters = {f"l{i}": a for i, a in enumerate(model)}
    outs = []
    with ProgrammedWeights(adapters) as weights, torch.no_grad():
        for keys in runs:
            weights.realize(prof, t=86400.0 if prof.has_drift else 0.0, **keys)
            outs += [model(x) for _ in range(2)]
    assert all(type(a.base).forward is nn.Linear.forward and "forward" not in a.base.__dict__ for a in model)
    return outs


def test_same_seeds_same_outputs_through_the_periphery():
    x = torch.randn(3, 5, 40, generator=generator(1, "x"))
    for name in ("rram", "pcm", "fefet"):
        prof = devices.load_profile(name).with_values({f"periphery.{k}": v for k, v in FULL.items()})
        first, again = forward_all(prof, x), forward_all(prof, x)
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
        assert not torch.equal(first[0], first[1])  # output noise (and read noise) redrawn at every MVM
        assert not torch.equal(first[0], first[2])  # another chip / read / seed
        plain = forward_all(devices.load_profile(name), x)
        assert (first[0] - plain[0]).abs().max() > 1e-4  # the periphery acts


def test_ideal_periphery_through_the_engine_is_the_clean_model():
    x = torch.randn(3, 5, 40, generator=generator(1, "x"))
    clean = forward_all(devices.load_profile("ideal"), x)
    tiled = Profile({"name": "tiles-only", "periphery": {"tile": {"rows": 7, "cols": 5}}}, "<t>")
    for a, b in zip(clean, forward_all(tiled, x), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for x in tensors:
        h.update(x.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


# forward outputs of tiny_model through ProgrammedWeights, recorded with the code before the periphery existed
# (commit 94443c4; pcm-ideal-periphery is what pcm was then), per torch version and CPU kernel set
ENGINE_GOLDEN = {("2.13", "AVX512"): {"pcm-ideal-periphery": "d742276501f7fb86", "rram": "65676d9c9a0005dc",
                                      "fefet": "15e58dcecd3aa5bc", "ideal": "99dbf44fc079cbb2",
                                      "every-mvm-value": "18674e355715fbb5"}}


def test_profiles_without_periphery_are_bit_identical_to_before():
    where = (torch.__version__.rsplit(".", 1)[0], torch.backends.cpu.get_cpu_capability())
    if where not in ENGINE_GOLDEN:
        pytest.skip(f"no golden checksums for torch {where[0]} with {where[1]} kernels")
    x = torch.randn(3, 5, 40, generator=torch.Generator().manual_seed(1))
    every = [PCM_PROG, {"drift": {"t0": "20s", "compensation": "global", "read_noise": {"q": 0.0088}}},
             {"read": {"sigma": 0.01, "relative_to": "value", "per": "mvm"}}]
    profs = {n: devices.load_profile(n) for n in ("pcm-ideal-periphery", "rram", "fefet", "ideal")}
    profs["every-mvm-value"] = Profile({"noise": every}, "<every>")
    got = {name: digest(*forward_all(prof, x)) for name, prof in profs.items()}
    assert got == ENGINE_GOLDEN[where]


# --- the shipped pcm (the periphery of IBM's 64-core PCM chip) against pcm-ideal-periphery ----------------------


def test_pcm_has_the_chip_periphery():
    pcm = devices.load_profile("pcm")
    per = pcm.spec.periphery
    assert (per.tile.rows, per.tile.cols) == (256, 256)
    assert (per.dac.bits, per.dac.range, per.dac.calibrate) == (8, None, "max")
    assert (per.adc.bits, per.adc.per, per.adc.range, per.adc.calibrate) == (8, "column", None, "max")
    assert per.output_noise.sigma == 0.004 and per.ir_drop is None
    assert pcm.periphery.draws and random_stages(pcm) == {"program", "read"}
    assert pcm.summary() == {"noise": ["programming", "drift"], "periphery": {
        "tile": "tile 256x256", "dac": "dac 8 bit (max)", "output_noise": "output_noise 0.004 of the ADC range",
        "adc": "adc 8 bit per column (max)"}}


def test_summary_names_every_periphery_part_in_mvm_order():
    parts = {**FULL, "dac": {"bits": 6, "range": 2.5}, "ir_drop": {"wire_resistance": 5.0, "scale": 2}}
    prof = periphery_profile(parts)
    assert prof.summary() == {"noise": [], "periphery": {
        "tile": "tile 16x8", "dac": "dac 6 bit (±2.5)", "ir_drop": "ir_drop 5 ohm x 2",
        "output_noise": "output_noise 0.02 of the ADC range", "adc": "adc 7 bit per column (percentile 99.99)"}}
    assert devices.load_profile("rram").summary() == {"noise": ["levels", "programming", "stuck_at", "read"],
                                                      "periphery": {}}


def test_pcm_ideal_periphery_is_pcm_without_its_periphery():
    pcm, ideal = devices.load_profile("pcm"), devices.load_profile("pcm-ideal-periphery")
    assert ideal.periphery is None and ideal.summary() == {"noise": ["programming", "drift"], "periphery": {}}
    same = {"name": "pcm", "description": pcm.spec.description, "periphery": pcm.spec.periphery}
    assert ideal.spec.model_copy(update=same) == pcm.spec
    w = torch.randn(300, 600, generator=generator(2, "w")) * 0.05
    for t in (0.0, 3600.0, 3.15e7):
        for keys in ({}, {"chip": 1, "program": 2, "read": 3, "seed": 4, "layer": "enc.0.q"}):
            a, b = pcm.realize(w, t=t, **keys), ideal.realize(w, t=t, **keys)
            assert torch.equal(a.weight, b.weight) and a.runtime_read is None and b.runtime_read is None


def chip_layer(prof, x, keys, passes=2):
    """One 600 → 300 layer (3 × 2 tiles of 256 × 256) programmed with ``prof`` one day after programming:
    its realized weight, ``passes`` forward passes of ``x`` and its periphery hook (None without one)."""
    lin = nn.Linear(600, 300)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(300, 600, generator=generator(4, "w")) * 0.05)
        lin.bias.copy_(torch.randn(300, generator=generator(4, "b")) * 0.1)
    layer = FrozenLinear(lin)
    with ProgrammedWeights({"enc.0.ff1": layer}) as weights, torch.no_grad():
        weights.realize(prof, t=86400.0, **keys)
        outs = [layer(x) for _ in range(passes)]
        return layer.base.weight.clone(), outs, (weights.hooks or [None])[0]


def test_pcm_differs_from_pcm_ideal_periphery_only_through_the_periphery():
    x = torch.randn(4, 6, 600, generator=generator(5, "x"))
    keys = {"chip": 1, "program": 2, "read": 0, "seed": 3}
    pcm, ideal = devices.load_profile("pcm"), devices.load_profile("pcm-ideal-periphery")
    w_ideal, y_ideal, none = chip_layer(ideal, x, keys)
    w_pcm, y_pcm, hook = chip_layer(pcm, x, keys)
    assert none is None and torch.equal(w_pcm, w_ideal)  # the same realized weight
    assert (hook.rows, hook.cols, hook.n_row_tiles) == (256, 256, 3)
    assert torch.equal(y_ideal[0], y_ideal[1]) and not torch.equal(y_pcm[0], y_pcm[1])  # output noise per MVM
    # without output noise: only the 8-bit DAC and ADC, each off by at most half a step (no clipping: the
    # ranges are calibrated on this batch), i.e. |Δy_j| ≤ Σ_i |w_ji|·r/254 + Σ_p R_pj/254
    _, (quiet, _), qhook = chip_layer(pcm.with_values({"periphery.output_noise.sigma": 0}), x, keys)
    bound = w_pcm.abs().sum(1) * qhook.input_range / 254 + qhook.output_range.sum(0).squeeze(0) / 254
    gap = (quiet - y_ideal[0]).abs()
    assert bool((gap <= bound * (1 + 1e-4) + 1e-6).all()) and gap.max() > 0.1 * bound.max()
    # output noise: σ·R_pj per tile, σ = 0.004, so two passes differ by sqrt(2 Σ_p (σ R_pj)²) per output (a bit
    # more, 1.15×: σ·R is half an ADC step, and noisy sums round to other levels)
    spread = ((y_pcm[0] - y_pcm[1]) / (2 * (0.004 * hook.output_range).square().sum(0)).sqrt()).std().item()
    assert 0.9 < spread < 1.25
    # with 24-bit converters and no output noise, pcm is pcm-ideal-periphery up to float rounding
    fine = pcm.with_values({"periphery.output_noise.sigma": 0, "periphery.dac.bits": 24, "periphery.adc.bits": 24})
    for a, b in zip(chip_layer(fine, x, keys)[1], y_ideal, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # outputs up to ~5: a few float32 ulps


# --- through a sweep on a tiny model ----------------------------------------------------------------------------


def test_a_sweep_with_a_periphery_profile_is_reproducible_and_restores_the_model(tiny_ckpts, tiny_tsv, tmp_path):
    from noisesim import checkpoints
    from noisesim.data import EvalBatches, encode, load_table
    from noisesim.engine.run import run as sweep
    from noisesim.evaluate import logits
    from noisesim.methods import adapters_of

    file = tmp_path / "chip.yaml"
    file.write_text(yaml.safe_dump({"name": "chip", "noise": [{"read": {"sigma": 0.01, "per": "mvm"}}],
                                    "periphery": {**FULL, "tile": {"rows": 8, "cols": 8}}}))
    kw = dict(profiles=[str(file)], sets=["periphery.adc.bits=4,8"], reads=2, data=tiny_tsv, progress=False)
    df = sweep([tiny_ckpts["grasp"]], **kw).frame
    chip = df[df.profile == "chip"]
    assert len(chip) == 2 * 2 and set(chip["periphery.adc.bits"]) == {4, 8}
    assert chip.accuracy.between(0, 1).all()
    again = sweep([tiny_ckpts["grasp"]], **kw).frame
    pd_cols = [c for c in df.columns if c != "seconds"]
    assert df[pd_cols].equals(again[pd_cols])
    bb = checkpoints.build(checkpoints.read(tiny_ckpts["grasp"]))
    dev = EvalBatches.build(encode(load_table(tiny_tsv), bb.tokenizer, 16), bb.tokenizer.pad_token_id)
    clean = logits(bb.model, dev)
    adapters = adapters_of(bb.model)
    with ProgrammedWeights(adapters) as weights:
        weights.realize(devices.load_profile(file), read=0)
        first = logits(bb.model, dev)
        weights.realize(devices.load_profile(file), read=0)
        assert torch.equal(logits(bb.model, dev), first) and not torch.equal(first, clean)
    assert all("forward" not in a.base.__dict__ for a in adapters.values())
    assert torch.equal(logits(bb.model, dev), clean)


@pytest.mark.parametrize("compensation", ["global", "column"])
def test_drift_compensation_is_digital_after_the_adc(compensation):
    """The layer's weight holds α folded in; a fixed ADC range sees the array's (drifted) partial sums y/α, so
    the output is α·quantize(y/α, R), and the realization reports the α it folded."""
    w = torch.randn(16, 40, generator=generator(0, "w")) * 0.05
    prof = Profile({"mapping": {"g_max": 25.0, "scale": "column"},
                    "noise": [{"drift": {"t0": "20s", "compensation": compensation}}],
                    "periphery": {"adc": {"bits": 5, "range": 0.4}}}, "<t>")
    out = prof.realize(w, t=3.15e7, layer="l")
    alpha = torch.as_tensor(out.alpha).reshape(-1)
    assert (alpha > 1.05).all() and alpha.numel() == (16 if compensation == "column" else 1)
    lin = nn.Linear(40, 16, bias=False)
    lin.weight.data = out.weight.clone()
    prof.periphery.attach(lin, w, prof.spec.mapping, generator(0, "p"), alpha=out.alpha)
    x = torch.randn(500, 40, generator=generator(1, "x"))
    y = x @ out.weight.t()
    want = quantize(y / alpha, 0.4, 5) * alpha
    torch.testing.assert_close(run(lin, x), want, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(want, quantize(y, 0.4, 5))  # folding α before the ADC would differ
