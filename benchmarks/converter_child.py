"""What keeping the converter child between runs saves: seconds per conversion call.

    python benchmarks/converter_child.py [--calls=4]

Saves the digits CNN (untrained; conversion time does not depend on the
weights) and converts it to float32 and int8 through
`export.convert.convert_all_in_child`, as a run does, `--calls` times with
the child kept (the first call starts it), then `--calls` times with a fresh
child each time (as every run did before the child was kept). Prints each
call's seconds and the medians. Run it on an idle machine: the figures are
wall time.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4, help="conversion calls per mode")
    args = parser.parse_args()
    import numpy as np

    import export.convert as convert_lib
    from models import digits_cnn, saved
    model = digits_cnn.build((8, 8, 1), 10)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = saved.save(model, tmp)
        representative = os.path.join(tmp, "representative.npy")
        np.save(representative, np.random.default_rng(0).random((20, 8, 8, 1), np.float32))
        jobs = [(model_path, fmt, os.path.join(tmp, f"out_{fmt}.tflite"))
                for fmt in ("float32", "int8")]
        seconds = {"kept": [], "fresh": []}
        for mode in ("kept", "fresh"):
            for _ in range(args.calls):
                if mode == "fresh" and convert_lib._CONVERTER is not None:
                    convert_lib._CONVERTER.stop()
                start = time.perf_counter()
                errors = convert_lib.convert_all_in_child(jobs, representative)
                seconds[mode].append(time.perf_counter() - start)
                if any(errors):
                    sys.exit(f"conversion failed: {errors}")
    kept = seconds["kept"]
    print(f"kept child:  {', '.join(f'{s:.2f}' for s in kept)} s (the first starts it); "
          f"median of the rest {statistics.median(kept[1:]):.2f} s")
    print(f"fresh child: {', '.join(f'{s:.2f}' for s in seconds['fresh'])} s; "
          f"median {statistics.median(seconds['fresh']):.2f} s")
    print(f"saved per run: {statistics.median(seconds['fresh']) - statistics.median(kept[1:]):.2f} s")


if __name__ == "__main__":
    main()
