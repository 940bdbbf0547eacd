"""The greenlite command line.

    python -m pipeline --recipe=recipes/default.yaml --workdir=runs/default \
        [--set train.epochs=3 ...] [--resume]
"""
import os
import sys

from absl import app, flags

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
flags.DEFINE_bool("verbose", False, "Also print TensorFlow's own C++ log lines (muted by default).")
FLAGS = flags.FLAGS


def main(argv):
    from pipeline.errors import GreenliteError
    if len(argv) > 1:
        print(f"greenlite: error: unexpected arguments {argv[1:]}; "
              "flags are --recipe, --workdir, --set and --resume", file=sys.stderr)
        return 2
    if FLAGS.verbose:
        os.environ["GREENLITE_VERBOSE"] = "1"  # read by pipeline.backend, inherited by children
    try:
        # Everything about the recipe and its paths is checked before
        # TensorFlow is imported: a typo costs a fraction of a second.
        from pipeline import recipe as recipe_lib
        recipe = recipe_lib.load(FLAGS.recipe, FLAGS["set"].value)
        recipe_lib.check_inputs(recipe)
        workdir = FLAGS.workdir or f"runs/{recipe.name}"
        resume_from = None
        if FLAGS.resume:
            from pipeline import resume
            resume_from = resume.locate(workdir, recipe)
        print(f"greenlite: recipe {FLAGS.recipe} ({len(recipe.stages)} stage(s)) → {workdir}"
              + (f", resuming {resume_from}" if resume_from else ""), flush=True)
        from pipeline.run import Runner
        Runner(recipe, workdir, log=lambda line: print(line, flush=True),
               resume_from=resume_from).run()
    except GreenliteError as e:
        print(f"greenlite: error: {e}", file=sys.stderr)
        return 2
    return 0


def run():
    app.run(main)


if __name__ == "__main__":
    run()
