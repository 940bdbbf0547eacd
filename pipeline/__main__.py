"""The greenlite command line.

    python -m pipeline --recipe=recipes/default.yaml --workdir=runs/default \
        [--set train.epochs=3 ...] [--resume | --workers=N]
"""
import os
import sys

from absl import app, flags

from pipeline.errors import GreenliteError, command

flags.DEFINE_string("recipe", "recipes/default.yaml", "The recipe (YAML) to run.")
flags.DEFINE_string("workdir", None,
                    "The run directory (default: runs/<recipe name>). Existing stage "
                    "directories and reports in it are replaced only when the new ones are complete.")
flags.DEFINE_multi_string("set", [], "Override a recipe value: key.path=value, e.g. "
                          "train.epochs=3 or data.source=npz. Repeatable.")
flags.DEFINE_bool("resume", False,
                  "Go on from the latest run in --workdir (killed, failed or completed): "
                  "stages whose settings and inputs are unchanged are reused, an interrupted "
                  "stage continues from its last finished epoch, the rest runs again.")
flags.DEFINE_integer("workers", None,
                     "Run the recipe as this many local worker processes of one multi-worker "
                     "run (distribute.strategy multi_worker, TF_CONFIG made for each); worker 0 "
                     "writes the run directory.")
flags.DEFINE_bool("verbose", False, "Also print TensorFlow's own C++ log lines (muted by default).")
FLAGS = flags.FLAGS


@command("greenlite")
def main(argv):
    if len(argv) > 1:
        raise GreenliteError(f"unexpected arguments {argv[1:]}; flags are --recipe, --workdir, "
                             "--set, --resume and --workers")
    if FLAGS.verbose:
        os.environ["GREENLITE_VERBOSE"] = "1"  # read by pipeline.backend, inherited by children
    # Everything about the recipe and its paths is checked before
    # TensorFlow is imported: a typo costs a fraction of a second.
    from pipeline import recipe as recipe_lib
    recipe = recipe_lib.load(FLAGS.recipe, FLAGS["set"].value)
    recipe_lib.check_inputs(recipe)
    workdir = FLAGS.workdir or f"runs/{recipe.name}"
    if FLAGS.workers is not None:
        return _launch_workers(recipe, workdir)
    resume_from = None
    if FLAGS.resume and recipe.distribute.strategy == "multi_worker":
        raise GreenliteError("--resume: not with distribute.strategy multi_worker (the "
                             "workers would have to agree on what to skip); run again "
                             "without --resume")
    if FLAGS.resume:
        from pipeline import resume
        resume_from = resume.locate(workdir, recipe)
    print(f"greenlite: recipe {FLAGS.recipe} ({len(recipe.stages)} stage(s)) → {workdir}"
          + (f", resuming {resume_from}" if resume_from else ""), flush=True)
    from pipeline.run import Runner
    Runner(recipe, workdir, log=lambda line: print(line, flush=True),
           resume_from=resume_from).run()
    return 0


def _launch_workers(recipe, workdir):
    """--workers=N: N local processes of this command as one multi-worker run."""
    from pipeline import launcher
    from pipeline.errors import GreenliteError
    if FLAGS.workers < 1:
        raise GreenliteError(f"--workers: got {FLAGS.workers}; expected at least 1")
    if FLAGS.resume:
        raise GreenliteError("--resume: not with --workers (the workers would have to agree "
                             "on what to skip); run again without --resume")
    command = [sys.executable, "-m", "pipeline", f"--recipe={FLAGS.recipe}", f"--workdir={workdir}",
               *(f"--set={o}" for o in FLAGS["set"].value),
               "--set=distribute.strategy=multi_worker", "--set=distribute.devices=null",
               *(["--verbose"] if FLAGS.verbose else [])]
    print(f"greenlite: recipe {FLAGS.recipe} ({len(recipe.stages)} stage(s)) → {workdir}, "
          f"{FLAGS.workers} local worker(s)", flush=True)
    return launcher.launch(command, FLAGS.workers)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
