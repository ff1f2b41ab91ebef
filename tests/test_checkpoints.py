"""Checkpoints: nothing user-owned is destroyed, writes survive kill -9, reading is strict."""

import json
import os
import shutil
import signal
import stat
import sys

import pytest
import torch
from conftest import assert_user_error, invoke
from safetensors.torch import load_file, save_file

from noisesim import checkpoints
from noisesim.configs import MethodConfig
from noisesim.errors import UserError
from noisesim.methods import adapters_of, inject, trainable_state
from noisesim.models import load_backbone

W, C = checkpoints.WEIGHTS, checkpoints.CONFIG




def snapshot(root):
    """Every path under ``root`` with its bytes (files) — what must survive a refused command."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read() if os.path.isfile(path) else None
    return out


@pytest.fixture(scope="module")
def made(tiny_dirs):
    """(state, meta) of an untrained grasp-w checkpoint on the tiny BERT (K=4)."""
    bb = load_backbone(tiny_dirs["bert"])
    method = MethodConfig(method="grasp-w", k=4)
    inject(bb, method)
    meta = {"backbone": tiny_dirs["bert"], "num_labels": 2, "pooling": "mean", "method": method.to_dict(),
            "best_step": 1}
    return trainable_state(bb), meta


@pytest.fixture
def ckpt(made, tmp_path):
    """A valid checkpoint folder to damage."""
    return checkpoints.write(tmp_path / "ck", *made)


def edit_tensors(folder, **changes):
    tensors = load_file(folder / W)
    for key_part, fn in changes.items():
        key = next(k for k in tensors if k.endswith(key_part.replace("__", ".")))
        tensors[key] = fn(tensors[key])
    save_file(tensors, folder / W)


def edit_meta(folder, fn):
    meta = json.loads((folder / C).read_text())
    fn(meta)
    (folder / C).write_text(json.dumps(meta))


# --- nothing user-owned is destroyed --------------------------------------------------------------


@pytest.mark.parametrize("out", [".", "", " ", "./", "..", "./thesis", "thesis/", "./afile.txt", "./link",
                                 "./thesis/..", "~"])
def test_train_out_refuses_user_folders_and_changes_nothing(tmp_path, monkeypatch, tiny_dirs, tiny_tsv, made, out):
    work = tmp_path / "work"
    (work / "thesis").mkdir(parents=True)
    (work / "thesis" / "thesis.tex").write_text("\\section{years of work}")
    (work / "afile.txt").write_text("mine")
    (work / "link").symlink_to(work / "thesis")
    checkpoints.write(checkpoints.user_store() / "mine", *made)
    monkeypatch.chdir(work)
    before, store = snapshot(tmp_path), snapshot(checkpoints.user_store())
    monkeypatch.setenv("HOME", str(work))
    result = invoke("train", "--method", "grasp-w", "--k", "4", "--steps", "2", "--data", tiny_tsv,
                    "--eval-data", tiny_tsv, "--model", tiny_dirs["bert"], "--out", out)
    assert_user_error(result, "--out" if not out.strip() else "nothing was changed")
    assert snapshot(tmp_path) == before and snapshot(checkpoints.user_store()) == store


def test_write_refuses_protected_folders(made, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    store = checkpoints.user_store()
    store.mkdir(parents=True)
    for target, why in [(home, "your home"), (store, "checkpoint store"), (store.parent, "checkpoint store"),
                        (tmp_path, "current one"), ("/", "root"), (checkpoints.bundled_store() / "new", "package"),
                        (store / ".hidden", "hidden")]:
        with pytest.raises(UserError, match=why):
            checkpoints.write(target, *made)
    assert not any(store.iterdir()) and not any(home.iterdir())


@pytest.mark.parametrize("where,why", [("afile/ck", "is a file"), ("/proc/ck", "not writable")])
def test_unwritable_targets_are_refused_before_training(tmp_path, monkeypatch, tiny_tsv, where, why):
    import noisesim.api

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    monkeypatch.setattr(noisesim.api, "load_backbone", lambda *a, **k: pytest.fail("trained anyway"))
    assert_user_error(invoke("train", "--steps", "2", "--data", tiny_tsv, "--out", where), why)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_empty_folder_is_used_and_a_checkpoint_is_replaced(made, tmp_path):
    state, meta = made
    (tmp_path / "empty").mkdir()
    folder = checkpoints.write(tmp_path / "empty", state, meta)
    assert sorted(p.name for p in folder.iterdir()) == sorted([C, W])
    checkpoints.write(folder, state, {**meta, "best_step": 7})
    assert checkpoints.read(str(folder)).meta["best_step"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no temp or backup folder left


def test_a_checkpoint_with_an_extra_file_is_not_replaced(ckpt, made):
    (ckpt / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not a noisesim checkpoint"):
        checkpoints.write(ckpt, *made)
    assert (ckpt / "notes.txt").read_text() == "mine"


def test_written_files_follow_the_umask(made, tmp_path):
    old = os.umask(0o022)
    try:
        folder = checkpoints.write(tmp_path / "perm", *made)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE((folder / f).stat().st_mode) for f in (C, W)} == {0o644}


def test_shipped_names_cannot_be_taken(made, tiny_tsv):
    assert_user_error(invoke("train", "--method", "grasp-w", "--steps", "2", "--data", tiny_tsv,
                             "--out", "sst2-grasp"), "shipped checkpoint")
    with pytest.raises(UserError, match="shipped"):
        checkpoints.write(checkpoints.user_store() / "sst2-stoch", *made)
    assert not checkpoints.user_store().exists()


def test_a_hand_copied_shipped_name_is_refused_and_reported(made):
    copy = checkpoints.user_store() / "sst2-grasp"
    checkpoints.write(checkpoints.user_store() / "x", *made).rename(copy)
    with pytest.raises(UserError, match="shipped checkpoint 'sst2-grasp'.*rename or remove"):
        checkpoints.read("sst2-grasp")
    assert checkpoints.known_checkpoints()["sst2-grasp"] == checkpoints.bundled_store() / "sst2-grasp"
    listed = invoke("ckpts")
    assert listed.exit_code == 0 and "never used: rename it" in listed.output


@pytest.mark.parametrize("out", ["a b", "-x", "x" * 101, "a\tb"])
def test_malformed_names_are_refused(out):
    with pytest.raises(UserError, match="not a checkpoint name"):
        checkpoints.out_folder(out)


def test_twin_must_exist_before_training(tiny_tsv, made, monkeypatch):
    import noisesim.api

    monkeypatch.setattr(noisesim.api, "load_backbone", lambda *a, **k: pytest.fail("trained anyway"))
    assert_user_error(invoke("train", "--steps", "2", "--data", tiny_tsv, "--out", "mine", "--twin", "sst2-grsp"),
                      "unknown checkpoint 'sst2-grsp'", "did you mean 'sst2-grasp'")
    checkpoints.write(checkpoints.user_store() / "mine", *made)
    assert_user_error(invoke("train", "--steps", "2", "--data", tiny_tsv, "--out", "mine", "--twin", "mine"),
                      "its own twin")


# --- kill -9 at any moment leaves the old or the new checkpoint, complete --------------------------


def _killed_write(made, point: str, n: int, exchange: bool) -> int:
    """Write 'victim' (best_step 1), then overwrite it (best_step 2) in a child that SIGKILLs itself at
    the n-th call of ``point``. Returns the child's wait status."""
    state, meta = made
    checkpoints.write(checkpoints.user_store() / "victim", state, meta)
    pid = os.fork()
    if pid:
        return os.waitpid(pid, 0)[1]
    try:  # the child: never returns into pytest
        calls = {"n": 0}

        def die():
            os.kill(os.getpid(), signal.SIGKILL)

        def bomb(orig, after=False):
            def wrapper(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == n and not after:
                    die()
                out = orig(*args, **kwargs)
                if calls["n"] == n:
                    die()
                return out
            return wrapper

        real_save = checkpoints._save_weights

        def half_save(tensors, path):  # die with half of the weights file written
            real_save(tensors, path)
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
            die()

        def partial_rmtree(path, *args, **kwargs):  # die with the old checkpoint half deleted
            (path / W).unlink()
            die()

        if not exchange:
            checkpoints._exchange = lambda a, b: False
        if point == "half_save":
            checkpoints._save_weights = half_save
        elif point == "rmtree":
            checkpoints.shutil.rmtree = partial_rmtree
        else:
            module, attr = {"save_file": (checkpoints, "_save_weights"), "fsync": (checkpoints, "_fsync"),
                            "exchange": (checkpoints, "_exchange"), "rename": (os, "rename")}[point]
            setattr(module, attr, bomb(getattr(module, attr), after=point == "exchange"))
        checkpoints.write(checkpoints.user_store() / "victim", state, {**meta, "best_step": 2})
    finally:
        os._exit(0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("point,n,exchange,expect", [
    ("half_save", 1, True, 1),   # in the middle of writing the weights
    ("save_file", 1, True, 1),   # before anything is written
    ("fsync", 2, True, 1),       # weights written, config being flushed
    ("exchange", 1, True, 2),    # right after the atomic swap, before the old one is deleted
    ("rmtree", 1, True, 2),      # while the old one is being deleted
    ("rename", 1, False, 1),     # no RENAME_EXCHANGE: before moving the old one aside
    ("rename", 2, False, 1),     # no RENAME_EXCHANGE: old moved aside, new not yet in place
    ("rmtree", 1, False, 2),     # no RENAME_EXCHANGE: new in place, old being deleted
])
def test_kill_during_write_leaves_a_complete_checkpoint(made, point, n, exchange, expect):
    status = _killed_write(made, point, n, exchange)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    store = checkpoints.user_store()
    assert list(checkpoints.known_checkpoints()) == ["sst2-grasp", "sst2-stoch", "victim"]
    assert [row["name"] for row in checkpoints.listing()] == ["sst2-grasp", "sst2-stoch", "victim"]
    assert checkpoints.read("victim").meta["best_step"] == expect
    assert sorted(p.name for p in store.iterdir()) == ["victim"]  # leftovers of the dead writer removed
    checkpoints.write(store / "victim", *made)  # and the next write works
    assert sorted(p.name for p in store.iterdir()) == ["victim"]


def test_a_live_writers_temp_folder_is_kept_and_never_listed(made):
    import fcntl

    store = checkpoints.user_store()
    checkpoints.write(store / "a", *made)
    tmp = store / ".a.noisesim-tmp-0123abcd"
    tmp.mkdir()
    fd = os.open(tmp, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert list(checkpoints.known_checkpoints()) == ["sst2-grasp", "sst2-stoch", "a"]
        assert tmp.exists()
        with pytest.raises(UserError):
            checkpoints.read(".a.noisesim-tmp-0123abcd")
    finally:
        os.close(fd)
    checkpoints.known_checkpoints()
    assert not tmp.exists()


def test_old_style_hidden_folders_are_never_listed_or_usable(made):
    store = checkpoints.user_store()
    shutil.copytree(checkpoints.write(store / "a", *made), store / ".a-x1y2z3")
    assert ".a-x1y2z3" not in checkpoints.known_checkpoints()
    assert "a-x1y2z3" not in invoke("ckpts").output
    with pytest.raises(UserError, match="not a checkpoint folder"):
        checkpoints.resolve(".a-x1y2z3")


# --- strict reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("damage,fragment", [
    ({"mu": lambda t: t.index_fill(1, torch.tensor([0]), float("nan"))}, "holds NaN"),
    ({"head__out__weight": lambda t: t.clone().fill_(float("inf"))}, "head.out.weight holds NaN"),
    ({"head__out__weight": lambda t: (t * 100).to(torch.int32)}, "dtype torch.int32"),
    ({"head__dense__bias": lambda t: t.double()}, "dtype torch.float64"),
    ({"mu": lambda t: t.half()}, "dtype torch.float16"),
    ({"group": lambda t: t.clone().index_fill(0, torch.tensor([0]), -1)}, "group id -1"),
    ({"group": lambda t: t.clone().index_fill(0, torch.tensor([0]), 4)}, "group id 4, outside 0 .. K-1 = 3"),
    ({"group": lambda t: t.float()}, "1-D integer tensor"),
    ({"mu": lambda t: t[:, :3].contiguous()}, "expected (rows, K=4)"),
    ({"head__out__bias": lambda t: torch.zeros(3)}, "num_labels=2"),
])
def test_damaged_tensors_are_refused(ckpt, damage, fragment):
    edit_tensors(ckpt, **damage)
    with pytest.raises(UserError, match="tensor .*" + fragment.replace("(", r"\(").replace(")", r"\)")):
        checkpoints.read(str(ckpt))


def test_missing_and_foreign_tensors_are_refused(ckpt):
    tensors = load_file(ckpt / W)
    save_file({k: v for k, v in tensors.items() if k != "head.out.bias"}, ckpt / W)
    with pytest.raises(UserError, match="head.out.bias is missing"):
        checkpoints.read(str(ckpt))
    save_file({**tensors, "encoder.x.gamma": torch.ones(4)}, ckpt / W)
    with pytest.raises(UserError, match="not a grasp-w parameter"):
        checkpoints.read(str(ckpt))


def test_shapes_and_dtypes_are_checked_against_the_model(ckpt, tiny_dirs):
    tensors = load_file(ckpt / W)
    key = next(k for k in tensors if k.endswith(".mu"))
    tensors[key] = torch.zeros(5, 4)  # right K, wrong input width
    save_file(tensors, ckpt / W)
    bb = load_backbone(tiny_dirs["bert"])
    with pytest.raises(UserError, match=f"{key} has shape \\(5, 4\\), the model needs \\(32, 4\\)"):
        checkpoints.build(checkpoints.read(str(ckpt)), bb)
    assert not adapters_of(bb.model)  # the reused backbone is left as it was


@pytest.mark.parametrize("edit,fragment", [
    (lambda m: m["method"].update(k=8), "expected (8,)|K=8"),
    (lambda m: m["method"].update(k="4"), "k='4' is invalid"),
    (lambda m: m["method"].update(method="dora"), "unknown method 'dora'"),
    (lambda m: m["method"].update(sigma_init=-1), "method config: sigma_init=-1"),
    (lambda m: m.pop("backbone"), "backbone is missing"),
    (lambda m: m.update(pooling="max"), "pooling='max'"),
    (lambda m: m.update(num_labels=1), "num_labels=1"),
    (lambda m: m.update(dev_accuracy=1.5), "dev_accuracy=1.5"),
    (lambda m: m.update(surprise=1), "surprise=1 is invalid: Extra inputs"),
    (lambda m: m.update(training={"lr": 0}), "training config: lr=0"),
])
def test_config_json_is_validated(ckpt, edit, fragment):
    edit_meta(ckpt, edit)
    with pytest.raises(UserError) as err:
        checkpoints.read(str(ckpt))
    assert "\n" not in str(err.value)
    assert any(part in str(err.value) for part in fragment.split("|")), str(err.value)


@pytest.mark.parametrize("text,fragment", [
    (b"\xff\xfe{", "not UTF-8"),
    (b"{not json", "not valid JSON"),
    (b'{"a": 1, "a": 2}', "key 'a' appears twice"),
    (b'{"best_step": NaN}', "NaN is not a number JSON allows"),
    (b"[" * 100000 + b"]" * 100000, "not valid JSON"),
])
def test_unreadable_config_json_is_one_line(ckpt, text, fragment):
    (ckpt / C).write_bytes(text)
    with pytest.raises(UserError, match=fragment) as err:
        checkpoints.read(str(ckpt))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cut", [0, 5, 100, -10])
def test_truncated_weights_are_one_line(ckpt, cut):
    data = (ckpt / W).read_bytes()
    (ckpt / W).write_bytes(data[:cut])
    with pytest.raises(UserError, match="damaged or not safetensors") as err:
        checkpoints.read(str(ckpt))
    assert "\n" not in str(err.value)


def test_nan_checkpoint_in_a_sweep_is_a_cli_error(ckpt, tiny_tsv, tmp_path):
    edit_tensors(ckpt, head__out__bias=lambda t: t.clone().fill_(float("nan")))
    assert_user_error(invoke("sweep", "--ckpt", ckpt, "--sigma", "0.01", "--data", tiny_tsv, "--out",
                             tmp_path / "o"), "head.out.bias holds NaN")


def test_ckpts_lists_a_broken_user_checkpoint_with_its_problem(ckpt):
    shutil.copytree(ckpt, checkpoints.user_store() / "broken")
    (checkpoints.user_store() / "broken" / C).write_bytes(b"{")
    listed = invoke("ckpts")
    assert listed.exit_code == 0, listed.output
    assert "sst2-stoch" in listed.output and "broken" in listed.output and "not valid JSON" in listed.output


# --- backbones: safetensors only --------------------------------------------------------------------


def test_pickle_only_backbone_is_refused(tmp_path, tiny_dirs):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dirs["bert"], folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not even read")
    with pytest.raises(UserError, match="holds only pytorch_model.bin; noisesim loads safetensors weights only"):
        load_backbone(str(folder))


def test_unpicklable_path_through_the_cli_is_one_line(tmp_path, tiny_dirs, tiny_tsv):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_dirs["bert"], folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert_user_error(invoke("train", "--model", folder, "--steps", "2", "--data", tiny_tsv, "--eval-data", tiny_tsv,
                             "--out", "x"), "safetensors weights only")
    assert not (checkpoints.user_store() / "x").exists()


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX file semantics")
