"""The attention mask constant against full-int8 perplexity, on text_lm's model and data.

Trains text_lm's tiny Transformer once with tf_keras' own attention (mask
-1e9), then, on the same weights, sets each mask constant and prints the
Keras float perplexity and the perplexity of the full-int8 TFLite file
(calibrated on the recipe's representative samples), all measured in this run.

    python benchmarks/attention_mask.py [--values=-1e9,-1e4,-1e3,-100,-30] [--epochs=8]
"""
import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--values", default="-1e9,-1e4,-1e3,-100,-30,-10")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()

    import numpy as np

    import models
    from export import benchmark
    from export.convert import convert
    from pipeline import training
    from models.attention import with_mask_value
    from pipeline.backend import keras
    from pipeline.data import load
    from pipeline.files import atomic_write_bytes
    from pipeline import recipe as recipe_lib

    recipe = recipe_lib.load(os.path.join(ROOT, "recipes", "text_lm.yaml"))
    data = load(recipe.data, seed=recipe.seed)
    keras.utils.set_random_seed(recipe.seed)
    options = {**recipe.model.options, "mask_value": None}  # tf_keras' -1e9
    model = models.build("tiny_transformer", data.input_shape, data.num_classes, options)
    train = recipe.stages[0].config
    model.compile(keras.optimizers.Adam(train.learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.fit(data.train.x, data.train.y, epochs=args.epochs, batch_size=train.batch_size,
              verbose=0)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; "
          f"{data.description}")
    representative = data.representative(recipe.data.representative_samples, recipe.seed)

    print("| mask constant | Keras float perplexity | int8 TFLite perplexity | int8 / float |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for value in (float(v) for v in args.values.split(",")):
            variant = with_mask_value(model, value)
            _, cross_entropy = training.evaluate(variant, data.test)
            path = os.path.join(tmp, "int8.tflite")
            atomic_write_bytes(path, convert(variant, "int8", representative,
                                             bound_attention=False))
            scored = benchmark.benchmark(path, (data.test.x, data.test.y), num_runs=1,
                                         warmup_runs=0)
            keras_ppl = float(np.exp(cross_entropy))
            print(f"| {value:g} | {keras_ppl:.3f} | {scored['perplexity']:.3f} | "
                  f"{scored['perplexity'] / keras_ppl:.3f} |", flush=True)


if __name__ == "__main__":
    main()
