"""The `greenlite` command: every subcommand answers --help with an example, and bad input
is one line and exit status 2."""
import os
import subprocess
import sys

import pytest

from pipeline import cli
from tests.conftest import ROOT


def greenlite(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_the_command_lists_its_subcommands_with_examples():
    result = greenlite("--help")
    assert result.returncode == 0
    for name, (_, _, summary, example) in cli.COMMANDS.items():
        assert f"  {name}" in result.stdout and summary in result.stdout
        assert f"e.g. {example}" in result.stdout


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_subcommand_has_help_with_an_example(name):
    result = greenlite(name, "--help")
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.startswith(f"greenlite {name}: ")
    assert f"e.g. {cli.COMMANDS[name][3]}" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["nope"], "greenlite: error: unknown command 'nope'; commands: run, search"),
    (["run", "recipes/default.yaml", "--set=train.epochs=0"],
     "greenlite: error: stages.train.epochs: got 0; expected an integer >= 1"),
    (["doctor", "--workdir=/no/such/run"], "doctor: error: --workdir: '/no/such/run' holds no "
                                           "report.json"),
    (["vela", "--model=/no/such.tflite"], "vela: error: --model: '/no/such.tflite' does not exist"),
    (["benchmark", "--model=/no/such.tflite"], "benchmark: error: --model: '/no/such.tflite' "
                                               "does not exist"),
])
def test_bad_input_is_one_line_and_status_2(args, message):
    result = greenlite(*args)
    assert result.returncode == 2, (result.stdout[-500:], result.stderr[-500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(message), lines[-1]
    assert "Traceback" not in result.stderr


def test_ctrl_c_is_one_line_and_status_130(capsys):
    """A run the user stops: one line naming the interruption, status 130 (the
    shell's 128 + SIGINT), no traceback."""
    from pipeline.errors import command

    @command("greenlite")
    def main(argv=None):
        raise KeyboardInterrupt

    assert main() == 130
    err = capsys.readouterr().err
    assert err.startswith("greenlite: interrupted (Ctrl-C)") and len(err.splitlines()) == 1


def test_a_terminated_command_cleans_up_and_says_so(tmp_path):
    """SIGTERM (a kill, a CI timeout) during a command: its temporary directory is
    removed on the way out, one line, status 143."""
    import signal
    script = tmp_path / "slow.py"
    script.write_text(
        "import sys, tempfile, time\n"
        "from pipeline.errors import command\n"
        "@command('greenlite')\n"
        "def main(argv=None):\n"
        f"    with tempfile.TemporaryDirectory(dir={str(tmp_path)!r}) as tmp:\n"
        "        print(tmp, flush=True)\n"
        "        time.sleep(60)\n"
        "sys.exit(main())\n")
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    scratch = process.stdout.readline().strip()
    assert os.path.isdir(scratch)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert not os.path.exists(scratch)
    assert err.strip().startswith("greenlite: terminated (SIGTERM)") and "Traceback" not in err
