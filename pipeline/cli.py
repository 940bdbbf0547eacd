"""The `greenlite` command: one entry point, a subcommand per job, one flag style.

    greenlite run recipes/default.yaml [--workdir=runs/default] [--set=train.epochs=3]
    greenlite search recipes/search_digits.yaml --workdir=runs/search_digits [--trials=36]
    greenlite doctor --workdir=runs/text_lm [--variant=train_int8] [--max_rise_percent=5]
    greenlite deploy --workdir=runs/default [--target=sparkfun-edge]
    greenlite gate --workdir=runs/default          # every file of a run in tflite-runtime 2.14
    greenlite gate --model=a.tflite                # one file
    greenlite benchmark --model=a.tflite [--data=test.npz] [--num_threads=1]
    greenlite vela --model=a_int8.tflite [--accelerator=ethos-u55-128]
    greenlite micro --model=a_int8.tflite [--data=export/test_data]
    greenlite metadata --model=a.tflite

Each subcommand takes `--flag=value` flags and `--help`; bad input is one line
`greenlite <command>: error: ...` and exit status 2. `python -m pipeline
--recipe=...` (and each module's own `python -m ...`) keep working; the
benchmark stays the one file export/benchmark.py, to copy to a device.
"""
import importlib
import sys

# name: (module, how it parses its flags, what it does, an example)
COMMANDS = {
    "run": ("pipeline.__main__", "absl", "run a recipe: train, compress, export, benchmark, "
            "report", "greenlite run recipes/default.yaml --workdir=runs/default"),
    "search": ("pipeline.search", "absl", "search a recipe's space for the best files within "
               "a budget", "greenlite search recipes/search_digits.yaml --workdir=runs/search"),
    "doctor": ("pipeline.doctor", "argparse", "diagnose (and fix) a run's int8 files",
               "greenlite doctor --workdir=runs/text_lm"),
    "deploy": ("pipeline.deploy", "argparse", "microcontroller fit, C arrays, Android "
               "metadata of a run's files", "greenlite deploy --workdir=runs/default"),
    "gate": (None, "argparse", "load a run's files (or one file) in tflite-runtime 2.14",
             "greenlite gate --workdir=runs/default; one file: greenlite gate --model=a.tflite"),
    "benchmark": ("export.benchmark", "argparse", "latency, size, MACs, accuracy of .tflite "
                  "(and .onnx) files, TensorFlow-free",
                  "greenlite benchmark --model=a.tflite --model=a.onnx"),
    "vela": ("export.vela", "argparse", "compile a full-integer file for Arm Ethos-U NPUs",
             "greenlite vela --model=a_int8.tflite"),
    "micro": ("export.micro", "argparse", "run a full-integer file in tflite-micro: arena, "
              "missing ops", "greenlite micro --model=a_int8.tflite"),
    "metadata": ("export.metadata", "argparse", "print a file's TFLite metadata",
                 "greenlite metadata --model=a.tflite"),
    "generate": ("export.generate", "argparse", "generate text with a language model's "
                 ".litertlm bundle in LiteRT-LM",
                 "greenlite generate --model=runs/text_lm/export/train_float32.litertlm "
                 "--prompt='The for statement '"),
    "bundle": ("export.bundle_lm", "argparse", "write checked LiteRT-LM bundles of a saved "
               "causal LM", "greenlite bundle --model=runs/text_lm/01_train/model.h5 "
               "--formats=float32,dynamic_range --output_prefix=lm --json=lm.json"),
}


def usage():
    width = max(len(n) for n in COMMANDS)
    lines = ["usage: greenlite <command> [--flag=value ...]   (greenlite <command> --help)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {summary}\n  {'':<{width}}  e.g. {example}"
              for name, (_, _, summary, example) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0].startswith("--"):  # `greenlite --recipe=...`, as before subcommands
        argv = ["run"] + argv
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"greenlite: error: unknown command {name!r}; commands: {', '.join(COMMANDS)} "
              "(greenlite --help)", file=sys.stderr)
        return 2
    module, style, _, example = COMMANDS[name]
    if name in ("run", "search") and rest and not rest[0].startswith("-"):
        rest = [f"--recipe={rest[0]}"] + rest[1:]  # the recipe as the first word
    if name == "gate":
        module = ("export.compat" if any(a.startswith("--model") or a.startswith("--list_ops")
                                         for a in rest) else "pipeline.runtime_gate")
    asks_help = any(a in ("-h", "--help", "--helpfull") for a in rest)
    if asks_help:
        print(f"greenlite {name}: {COMMANDS[name][2]}\n  e.g. {example}\n")
    # The subcommand's own usage lines and errors name it as typed.
    sys.argv = [f"greenlite {name}"] + rest
    target = importlib.import_module(module)
    if style == "absl":
        from absl import app, flags
        if asks_help:  # its own flags, not absl's whole list
            print(flags.FLAGS.module_help(target))
            return 0
        # One command per process: the run and the search define flags of one name.
        app.run(target.main)  # exits with main's status
        return 0
    return target.main(rest)


if __name__ == "__main__":
    sys.exit(main())
