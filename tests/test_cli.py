"""The `greenlite` command: every subcommand answers --help with an example, and bad input
is one line and exit status 2."""
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
