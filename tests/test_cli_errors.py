"""Every user error is one line 'error: …' with exit 2, through the real entry point (noisesim.cli.main) too."""

import errno
import os
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from noisesim.cli import app, main, user_errors

USAGE = [  # (arguments, fragments of the one error line)
    (["sweep", "--programs", "abc"], ["Invalid value for '--programs'", "see noisesim sweep --help"]),
    (["sweep", "--seeds", "abc"], ["'--seeds'", "see noisesim sweep --help"]),  # the old name of --programs
    (["sweep", "--workers", "1.5"], ["Invalid value for '--workers'"]),
    (["sweep", "--sigmaa", "0.1"], ["no such option: --sigmaa", "did you mean --sigma?", "noisesim sweep --help"]),
    (["train", "--out", "x", "--lr", "fast"], ["Invalid value for '--lr'", "noisesim train --help"]),
    (["train"], ["Missing option '--out'", "see noisesim train --help"]),
    (["plot"], ["Missing argument 'results'", "see noisesim plot --help"]),
    (["plot", "a", "b"], ["unexpected extra argument", "noisesim plot --help"]),
    (["sweep", "--ckpt"], ["'--ckpt' requires an argument", "see noisesim sweep --help"]),
    (["sweep", "--twin=maybe"], ["does not take a value", "noisesim sweep --help"]),
    (["sweeep"], ["No such command 'sweeep'", "Did you mean 'sweep'", "see noisesim --help"]),
    (["profiles", "lst"], ["No such command 'lst'", "see noisesim profiles --help"]),
    (["profiles", "show"], ["Missing argument 'name'", "noisesim profiles show --help"]),
    (["--bogus"], ["no such option: --bogus", "see noisesim --help"]),
]


def run_main(monkeypatch, capsys, *args):
    """Run noisesim.cli.main as the console script does; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["noisesim", *map(str, args)])
    with pytest.raises(SystemExit) as info:
        main()
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def assert_one_line(code, out, err, *fragments):
    assert code == 2, (code, out, err)
    lines = [line for line in (out + err).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), out + err
    assert err.startswith("error: ") and "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("args", "fragments"), USAGE, ids=[" ".join(a) for a, _ in USAGE])
def test_usage_errors_through_main(monkeypatch, capsys, args, fragments):
    assert_one_line(*run_main(monkeypatch, capsys, *args), *fragments)


@pytest.mark.parametrize(("args", "fragments"), USAGE[:4], ids=[" ".join(a) for a, _ in USAGE[:4]])
def test_usage_errors_through_cli_runner(args, fragments):
    result = CliRunner().invoke(app, args)
    assert_one_line(result.exit_code, result.stdout, result.stderr, *fragments[:1])


@pytest.mark.slow
def test_console_entry_point_in_a_subprocess(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NOISESIM_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "noisesim.cli", "sweep", "--sigmaa", "1"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert_one_line(proc.returncode, proc.stdout, proc.stderr, "no such option: --sigmaa", "did you mean --sigma?",
                    "see noisesim sweep --help")


def test_help_and_bare_command_unchanged(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "--help")
    assert code == 0 and "sweep" in out and "train" in out and err == ""
    code, out, _ = run_main(monkeypatch, capsys)  # no arguments: the help, exit 2 (as typer does)
    assert code == 2 and "sweep" in out


def test_user_error_through_main_is_one_line(monkeypatch, capsys, tmp_path):
    assert_one_line(*run_main(monkeypatch, capsys, "profiles", "show", tmp_path / "nope\nx.yaml"), "nope\\nx.yaml")


def test_interrupt_exits_130(monkeypatch, capsys):
    import noisesim.checkpoints

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(noisesim.checkpoints, "listing", interrupted)
    code, out, err = run_main(monkeypatch, capsys, "ckpts")
    assert code == 130 and "Traceback" not in out + err


def _raising(exc):
    @user_errors
    def command():
        raise exc

    return command


@pytest.mark.parametrize(("exc", "fragments"), [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out"), ["cannot use /data/out: Permission denied"]),
    (OSError(errno.EROFS, "Read-only file system", "/ro/x"), ["cannot write /ro/x: Read-only file system",
                                                              "choose another folder"]),
    (OSError(errno.ENOSPC, "No space left on device"), ["cannot write: No space left on device", "free some space"]),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/a/file/x"), ["cannot use /a/file/x: Not a directory"]),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/x/y"), ["cannot use /proc/x/y"]),
    (MemoryError(), ["out of memory", "use "]),
])
def test_environment_errors_are_one_line(capsys, exc, fragments):
    with pytest.raises(typer.Exit) as info:
        _raising(exc)()
    err = capsys.readouterr().err
    assert_one_line(info.value.exit_code, "", err, *fragments)


def test_cuda_out_of_memory_is_one_line(capsys):
    import torch

    with pytest.raises(typer.Exit) as info:
        _raising(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))()
    assert_one_line(info.value.exit_code, "", capsys.readouterr().err, "out of memory")


@pytest.mark.parametrize("exc", [
    ValueError("a bug"), KeyError("x"), RuntimeError("a bug"), TypeError("a bug"),
    ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),  # not a path problem
    PermissionError(errno.EACCES, "Permission denied"),  # no path named: cannot say what to change
])
def test_bugs_keep_their_traceback(exc):
    with pytest.raises(type(exc)):
        _raising(exc)()


def test_bad_data_through_main(monkeypatch, capsys, tiny_ckpts, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("sentence\tlabel\ngood\t1\n3\tfine movie\t1\n")
    out = tmp_path / "o"
    assert_one_line(*run_main(monkeypatch, capsys, "sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01",
                              "--data", bad, "--out", out), str(bad), "line 3", "3 tab-separated field(s)")
    assert not out.exists()
    huge = tmp_path / "huge.tsv"
    huge.write_text("sentence\tlabel\nok\t99999999999999999999\n")
    assert_one_line(*run_main(monkeypatch, capsys, "sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01",
                              "--data", huge, "--out", out), "line 2", "out of range")
    assert_one_line(*run_main(monkeypatch, capsys, "sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01",
                              "--data", tmp_path, "--out", out), "is a folder")
    assert not out.exists()


def test_unwritable_report_out_through_main(monkeypatch, capsys, tiny_ckpts, tiny_tsv, tmp_path):
    results = tmp_path / "run"
    code, _, err = run_main(monkeypatch, capsys, "sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01",
                            "--programs", "1", "--data", tiny_tsv, "--out", results)
    assert code == 0, err
    blocker = tmp_path / "a-file"
    blocker.write_text("mine\n")
    target = blocker / "report.md"  # a path under a regular file
    code, out, err = run_main(monkeypatch, capsys, "report", results, "--out", target)
    assert_one_line(code, out, err, str(target), "is a file, not a folder")  # checked before the report is printed
    assert blocker.read_text() == "mine\n"
