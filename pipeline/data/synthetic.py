"""Small synthetic datasets to try recipes on when no real data is at hand.

They make learnable, deterministic stand-ins for the inputs the zoo models
expect (MFCC-like keyword features, small colour images); accuracy on them
says nothing about a real task. Nothing is downloaded.

    python -m pipeline.data.synthetic --kws=data/kws.npz --images=data/shapes
"""
import argparse
import os

import numpy as np


def keyword_features(path, classes=4, per_class=150, frames=49, coefficients=10, seed=0):
    """Writes an npz of MFCC-like features (frames x coefficients x 1) and labels.

    Class k has a ridge whose coefficient index drifts with slope k over time,
    plus noise; x is float32 with the shape DS-CNN takes.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.3, (classes * per_class, frames, coefficients, 1)).astype(np.float32)
    y = np.repeat(np.arange(classes), per_class)
    t = np.arange(frames)
    for i, k in enumerate(y):
        start = rng.integers(0, coefficients)
        ridge = (start + (k + 1) * t / frames * coefficients / 2).astype(int) % coefficients
        x[i, t, ridge, 0] += 1.5
    order = rng.permutation(len(y))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, x=x[order], y=y[order])
    return path


def shape_images(root, classes=("circle", "square", "cross"), per_class=40, size=48, seed=0):
    """Writes PNG images of coloured shapes, one subfolder per class."""
    from pipeline.backend import tf
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 60, (size, size, 3)).astype(np.float32)
            cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
            r = rng.integers(size // 8, size // 4)
            if name == "circle":
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            elif name == "square":
                mask = (abs(yy - cy) < r) & (abs(xx - cx) < r)
            else:
                mask = ((abs(yy - cy) < r // 3) & (abs(xx - cx) < r)) | (
                    (abs(xx - cx) < r // 3) & (abs(yy - cy) < r))
            image[mask] = rng.integers(120, 256, 3)
            png = tf.io.encode_png(image.astype(np.uint8)).numpy()
            with open(os.path.join(root, name, f"{i:03d}.png"), "wb") as f:
                f.write(png)
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kws", help="write keyword features to this .npz")
    parser.add_argument("--images", help="write a shape-image folder here")
    args = parser.parse_args()
    if args.kws:
        print("wrote", keyword_features(args.kws))
    if args.images:
        print("wrote", shape_images(args.images))


if __name__ == "__main__":
    main()
