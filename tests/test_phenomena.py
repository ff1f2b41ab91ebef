"""The phenomenon profiles (issue 12): ``device-to-device``, ``cycle-to-cycle`` and ``drift`` each draw from
their own seed stages only, in weight- or g_max-relative units, with the statistics their headers state, and
``--set`` on their strength scales the realized noise proportionally."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import invoke

from noisesim import devices
from noisesim.devices.library import bundled_profiles
from noisesim.engine.config import SweepConfig
from noisesim.engine.grid import build_settings, random_stages, realizations
from noisesim.seeds import generator

PHENOMENA = {"device-to-device": (["device_to_device"], {"chip"}),
             "cycle-to-cycle": (["programming", "read"], {"program", "read"}),
             "drift": (["drift"], {"program"})}
YEAR, DAY = 365 * 86400.0, 86400.0
RECTIFIED = math.sqrt(1.5 - 1 / (2 * math.pi))  # std of ε₁ − max(0, ε₂): a used device minus one clipped at 0
HALF_MEAN = 1 / math.sqrt(2 * math.pi)  # E max(0, ε)


def big_weights() -> torch.Tensor:
    """512 × 256 = 131072 weights with |w| from 0.5 to 1 of each output's abs-max (a used device never goes
    below 0 by a few % of g_max of noise), random signs; input 0 holds the abs-max."""
    gen = torch.Generator().manual_seed(3)
    mag = torch.rand(512, 256, generator=gen) * 0.5 + 0.5
    sign = torch.where(torch.rand(512, 256, generator=gen) < 0.5, -1.0, 1.0)
    w = mag * sign * (torch.rand(512, 1, generator=gen) * 0.1 + 0.02)  # per-column scales, like a real layer
    w[:, 0] = w.abs().amax(dim=1)
    return w


def absmax(w: torch.Tensor) -> torch.Tensor:
    return w.abs().amax(dim=1, keepdim=True)


def folded_normal(mu: float, sigma: float) -> tuple[float, float]:
    """Mean and std of |N(μ, σ²)|."""
    phi = 0.5 * (1 + math.erf(-mu / (sigma * math.sqrt(2))))
    mean = sigma * math.sqrt(2 / math.pi) * math.exp(-mu**2 / (2 * sigma**2)) + mu * (1 - 2 * phi)
    return mean, math.sqrt(mu**2 + sigma**2 - mean**2)


@pytest.mark.parametrize("name", PHENOMENA)
def test_each_phenomenon_profile_is_shipped_and_draws_from_its_stages_only(name):
    prof = devices.load_profile(name)
    kinds, stages = PHENOMENA[name]
    assert prof.path == bundled_profiles() / f"{name}.yaml" and prof.name == name
    assert [c.key for c in prof.components] == kinds and prof.periphery is None
    assert random_stages(prof) == stages
    assert prof.spec.description.strip() and "\n" not in prof.spec.description
    # relative units: the same weights whatever g_max the mapping uses
    w = big_weights()[:64]
    for t in ((DAY,) if prof.has_drift else (0.0,)):
        one = prof.realize(w, t=t, chip=1, program=2, read=1)
        other = prof.with_values({"mapping.g_max": 40.0}).realize(w, t=t, chip=1, program=2, read=1)
        torch.testing.assert_close(other.weight, one.weight, rtol=1e-4, atol=1e-6)
        if one.runtime_read is not None:
            torch.testing.assert_close(other.runtime_read.var, one.runtime_read.var, rtol=1e-4, atol=0)


def test_device_to_device_is_static_per_chip():
    prof = devices.load_profile("device-to-device")
    w = big_weights()
    base = prof.realize(w, chip=0, program=0, read=0).weight
    for program, read in ((1, 0), (3, 2), (0, 5)):
        assert torch.equal(prof.realize(w, chip=0, program=program, read=read).weight, base)
    other = prof.realize(w, chip=1).weight
    assert (other != base).float().mean() > 0.99
    # the two chips are draws of one distribution: the same spread
    assert float((other - w).std() / (base - w).std()) == pytest.approx(1, abs=0.02)


def test_device_to_device_statistics_and_strength():
    prof = devices.load_profile("device-to-device")
    gain, offset = (prof.components[0].spec.gain_std, prof.components[0].spec.offset_std)
    assert (gain, offset) == (0.15, 0.05)
    w = big_weights()
    # gain alone: a multiplicative error of gain_std on the used device (the unused one stays at 0)
    only_gain = prof.with_values({"device_to_device.offset_std": 0.0})
    rel = only_gain.realize(w, chip=2).weight / w - 1
    assert float(rel.mean()) == pytest.approx(0, abs=0.002) and float(rel.std()) == pytest.approx(gain, rel=0.01)
    # offset alone: offset_std·g_max on both devices, the unused one clipped at 0
    only_offset = prof.with_values({"device_to_device.gain_std": 0.0})
    err = (only_offset.realize(w, chip=2).weight - w) / absmax(w) * w.sign()  # toward zero: negative
    assert float(err.std()) == pytest.approx(offset * RECTIFIED, rel=0.01)
    assert float(err.mean()) == pytest.approx(-offset * HALF_MEAN, rel=0.02)
    # --set device_to_device.scale / gain_std: the noise scales with it
    noise = {s: prof.with_values({"device_to_device.scale": s}).realize(w, chip=2).weight - w for s in (0.25, 0.5, 1)}
    assert float(noise[1].std() / noise[0.5].std()) == pytest.approx(2, rel=1e-3)
    assert float(noise[0.25].std() / noise[0.5].std()) == pytest.approx(0.5, rel=1e-3)
    doubled = only_gain.with_values({"device_to_device.gain_std": 0.3}).realize(w, chip=2).weight / w - 1
    assert float(doubled.std()) == pytest.approx(0.3, rel=0.01)
    off = prof.with_values({"device_to_device.scale": 0})
    assert off.noiseless and random_stages(off) == set() and torch.equal(off.realize(w).weight, w)


def test_cycle_to_cycle_redraws_at_every_programming_and_read():
    prof = devices.load_profile("cycle-to-cycle")
    sigma_p, sigma_r = prof.components[0].spec.coefficients[0], prof.components[1].spec.sigma
    assert (sigma_p, sigma_r, prof.components[1].spec.per) == (0.04, 0.02, "mvm")
    w = big_weights()
    first = prof.realize(w, chip=0, program=0, read=0)
    # programming noise: the same for every read of a programming, new at every programming
    assert torch.equal(prof.realize(w, chip=0, program=0, read=4).weight, first.weight)
    again = prof.realize(w, chip=0, program=1).weight
    assert (again != first.weight).float().mean() > 0.99
    stds = []
    for chip, program in ((0, 0), (0, 1), (1, 0), (5, 3)):
        err = (prof.realize(w, chip=chip, program=program).weight - w) / absmax(w) * w.sign()
        stds.append(float(err.std()))
        assert float(err.mean()) == pytest.approx(-sigma_p * HALF_MEAN, rel=0.03)
    assert stds == pytest.approx([sigma_p * RECTIFIED] * 4, rel=0.01)  # the same on every chip: nothing per chip
    # read noise: per output, var = 2·(σ_r·g_max·k)² = 2·(σ_r·abs-max)², the same whatever chip and programming
    golden = 2 * (sigma_r * absmax(w)) ** 2
    for chip, program in ((0, 0), (3, 2)):
        var = prof.realize(w, chip=chip, program=program).runtime_read.var
        torch.testing.assert_close(var, golden, rtol=1e-4, atol=0)
    # one draw per read: reads 0 and 1 of one programming differ by read noise of that σ, nothing else
    reads = [devices.apply(prof, w, chip=0, program=0, read=r) - first.weight for r in (0, 1)]
    z = [r / golden.sqrt() for r in reads]
    assert (reads[0] != reads[1]).float().mean() > 0.99
    assert [float(x.std()) for x in z] == pytest.approx([1, 1], rel=0.01)
    assert float((z[0] * z[1]).mean()) == pytest.approx(0, abs=0.01)  # independent reads
    sample = first.runtime_read.sample(first.weight, generator(0, "read", 0, 0, 1, "", "runtime"))
    assert torch.equal(sample, devices.apply(prof, w, chip=0, program=0, read=1))  # the sweep's stream for read 1


def test_cycle_to_cycle_strengths_scale_the_noise():
    prof = devices.load_profile("cycle-to-cycle")
    w = big_weights()
    noise = {s: prof.with_values({"programming.scale": s}).realize(w, program=1).weight - w for s in (1, 3)}
    assert float(noise[3].std() / noise[1].std()) == pytest.approx(3, rel=1e-3)
    var = {s: prof.with_values({"read.scale": s}).realize(w).runtime_read.var for s in (1, 2.5)}
    torch.testing.assert_close(var[2.5], var[1] * 2.5**2, rtol=1e-5, atol=0)
    off = prof.with_values({"programming.scale": 0, "read.scale": 0})
    assert random_stages(off) == set() and off.noiseless


def test_drift_follows_the_power_law():
    prof = devices.load_profile("drift")
    spec = prof.components[0].spec
    assert (spec.nu_mean.a, spec.nu_mean.b, spec.nu_std.a, spec.nu_std.b, spec.t0, spec.compensation) == \
        (0.0, 0.05, 0.0, 0.02, 20.0, "none")
    w = big_weights()
    # t = 0: the weights as programmed, whatever the programming; nothing to draw at that time
    for program in (0, 1):
        torch.testing.assert_close(prof.realize(w, program=program).weight, w, rtol=1e-6, atol=1e-7)
    assert random_stages(prof, 0.0) == set() and random_stages(prof, DAY) == {"program"}
    # one ν (ν_std = 0): every weight × ((t + t0)/t0)^(−ν); 0.4899… after a year for ν = 0.05
    single = prof.with_values({"drift.nu_std.b": 0.0})
    assert ((YEAR + 20) / 20) ** -0.05 == pytest.approx(0.489904192)
    for t in (DAY, YEAR):
        torch.testing.assert_close(single.realize(w, t=t).weight, w * ((t + 20) / 20) ** -0.05, rtol=1e-5, atol=0)
    # ν = |N(0.05, 0.02)| per device: in expectation the factor E exp(−ν·L), L = ln((t + t0)/t0)
    nu = np.linspace(-0.2, 0.3, 200_001)
    density = np.exp(-((nu - 0.05) / 0.02) ** 2 / 2) / (0.02 * math.sqrt(2 * math.pi))
    for t in (DAY, YEAR):
        expected = float(np.trapezoid(density * np.exp(-np.abs(nu) * math.log((t + 20) / 20)), nu))
        ratio = prof.realize(w, t=t, program=1).weight / w
        assert float(ratio.mean()) == pytest.approx(expected, rel=0.003)
    assert expected == pytest.approx(0.5091, abs=2e-4)  # a year: half the conductance left


def test_drift_compensation_restores_the_scale():
    prof = devices.load_profile("drift")
    w = big_weights()
    none = prof.realize(w, t=YEAR).weight
    assert float(none.abs().mean() / w.abs().mean()) < 0.55
    glob = prof.with_values({"drift.compensation": "global"}).realize(w, t=YEAR).weight
    assert float(glob.abs().mean()) == pytest.approx(float(w.abs().mean()), rel=1e-5)
    column = prof.with_values({"drift.compensation": "column"}).realize(w, t=YEAR).weight
    torch.testing.assert_close(column.abs().mean(dim=1), w.abs().mean(dim=1), rtol=1e-5, atol=0)
    # what compensation leaves is the spread of ν: the same relative spread, now around 1
    spread = [float((x / w).std() / (x / w).mean()) for x in (none, glob, column)]
    assert spread == pytest.approx([spread[0]] * 3, rel=0.01)


def test_drift_strength_scales_the_exponents():
    prof = devices.load_profile("drift")
    w = big_weights()
    log_l = math.log((YEAR + 20) / 20)
    logs = {s: torch.log(prof.with_values({"drift.scale": s}).realize(w, t=YEAR).weight / w) for s in (1, 2)}
    _, std = folded_normal(0.05, 0.02)
    assert float(logs[1].std()) == pytest.approx(std * log_l, rel=0.01)  # std of −ν·L
    assert float(logs[2].std() / logs[1].std()) == pytest.approx(2, rel=1e-4)
    assert float(logs[2].mean() / logs[1].mean()) == pytest.approx(2, rel=1e-4)
    wide = prof.with_values({"drift.nu_std.b": 0.04}).realize(w, t=YEAR).weight
    assert float(torch.log(wide / w).std()) == pytest.approx(folded_normal(0.05, 0.04)[1] * log_l, rel=0.01)


def test_a_drift_sweep_evaluates_time_zero_once():
    config = SweepConfig.build(ckpt=["sst2-grasp"], profile=["drift"], time="0s,1d", chips=2, programs=3,
                               twin=False)
    notes: list[str] = []
    settings = build_settings(config, notes)
    drift = next(s for s in settings if s.profile.name == "drift")
    cells = realizations(drift, config, notes)
    assert [c for c in cells if c[0] == 0] == [(0.0, 0, 0, 0)]
    assert sorted(c for c in cells if c[0] > 0) == [(DAY, c, p, 0) for c in range(2) for p in range(3)]
    assert any("drift acts only at t > 0" in n and "evaluated once there" in n for n in notes), notes
    pcm = devices.load_profile("pcm")
    assert len(realizations(type(drift)(pcm, {}), config, [])) == 2 * 2 * 3  # programming noise: all at t = 0 too
    alone: list[str] = []
    realizations(drift, SweepConfig.build(ckpt=["sst2-grasp"], profile=["drift"], twin=False), alone)
    assert any("give --time" in n for n in alone), alone


def test_a_sweep_names_its_levels_in_the_field_terms(tiny_ckpts, tiny_tsv, tmp_path):
    """The console summary calls chips device-to-device, programmings and reads cycle-to-cycle; the drift
    profile is evaluated once at time 0 (with a note) and per chip and programming at 1 d."""
    out = tmp_path / "o"
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--profile", "drift", "--time", "0s,1d", "--chips", "2",
                    "--programs", "2", "--data", tiny_tsv, "--out", out)
    assert result.exit_code == 0, result.output
    assert ("mean ± std over 2 chip(s) (device-to-device) × 2 programming(s) (cycle-to-cycle: write) × 1 read(s)"
            " (cycle-to-cycle: read)") in result.output
    spread = next(line for line in result.output.splitlines() if line.startswith("spread (std, points): "))
    assert "chip (device-to-device) " in spread and "programming (cycle-to-cycle: write) " in spread
    assert "note: drift: drift acts only at t > 0" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    noisy = frame[~frame["clean"]]
    assert len(frame) == 1 + 1 + 2 * 2  # clean; time 0 once; 1 d on 2 chips × 2 programmings
    assert noisy.groupby("time_s").size().to_dict() == {0.0: 1, DAY: 4}
    assert invoke("report", out, "--out", tmp_path / "r.md").exit_code == 0
    report = (tmp_path / "r.md").read_text()
    assert "sd_chip: between chips (device-to-device variation); sd_program: between programmings of one chip" \
           " (cycle-to-cycle, write-to-write); sd_read: between reads of one programming" in report


def test_profiles_list_shows_each_with_its_description():
    result = invoke("profiles", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    for name, (kinds, _) in PHENOMENA.items():
        prof = devices.load_profile(name)
        want = f"{name} {prof.spec.description} [{', '.join(kinds)}] {prof.path}"
        assert rows[name].split() == want.split()  # names padded to one column
    assert rows["ideal"].split()[:5] == ["ideal", "Noise-free", "devices", "(reference).", "[no"]
    assert len({len(line) - len(line[len(name):].lstrip()) for name, line in rows.items()}) == 1  # one name column
