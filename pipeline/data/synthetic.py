"""Small synthetic datasets to try recipes on when no real data is at hand.

They make learnable, deterministic stand-ins for the inputs the zoo models
expect (MFCC-like keyword features, small colour images); accuracy on them
says nothing about a real task. Nothing is downloaded.

    python -m pipeline.data.synthetic --kws=data/kws.npz --images=data/shapes \
        --scenes=data/scenes [--per_class=150 --size=96]
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


SCENE_CLASSES = ("circle", "square", "triangle", "cross", "star", "ring", "ellipse",
                 "diamond", "hexagon", "crescent")


def scene_images(root, classes=SCENE_CLASSES, per_class=150, size=96, seed=0):
    """Writes photo-like PNGs of objects on cluttered backgrounds, one subfolder per class.

    Each image has a smooth colour gradient, low-frequency blotches and
    grain for a background, one or two distractor strokes, and the class's
    object at a random position, size, rotation and colour with a shading
    gradient and a soft shadow; drawn at 2x and downsampled (anti-aliased).
    Unlike random noise, a network must learn shape, not colour or position.
    Uses Pillow (installed with matplotlib); no TensorFlow.
    """
    from PIL import Image, ImageDraw, ImageFilter
    rng = np.random.default_rng(seed)
    big = 2 * size
    yy, xx = np.mgrid[:big, :big] / big
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            angle = rng.uniform(0, 2 * np.pi)
            t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
            t = (t - t.min()) / (np.ptp(t) + 1e-9)
            background = a * (1 - t) + b * t
            blotches = rng.normal(0, 1, (6, 6, 3))
            blotches = np.asarray(Image.fromarray(((blotches - blotches.min()) / np.ptp(blotches)
                                                   * 255).astype(np.uint8)).resize(
                (big, big), Image.BICUBIC), np.float32) - 128
            pixels = np.clip(background + 0.35 * blotches, 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            draw = ImageDraw.Draw(image)
            for _ in range(rng.integers(1, 3)):  # distractor strokes
                points = [tuple(rng.uniform(0, big, 2)) for _ in range(3)]
                draw.line(points, fill=tuple(int(v) for v in rng.uniform(0, 255, 3)),
                          width=int(rng.integers(2, 6)))
            cx, cy = rng.uniform(0.3, 0.7, 2) * big
            r = rng.uniform(0.18, 0.32) * big
            rotation = rng.uniform(0, 2 * np.pi)
            colour = rng.uniform(0, 255, 3)
            mask = Image.new("L", (big, big), 0)
            _draw_shape(ImageDraw.Draw(mask), name, cx, cy, r, rotation)
            shadow = mask.filter(ImageFilter.GaussianBlur(big / 40)).transform(
                mask.size, Image.AFFINE, (1, 0, -big / 50, 0, 1, -big / 50))
            pixels = np.asarray(image, np.float32)
            pixels *= 1 - 0.45 * (np.asarray(shadow, np.float32)[..., None] / 255)
            shade = 0.7 + 0.6 * ((xx - cx / big) * np.cos(rotation)
                                 + (yy - cy / big) * np.sin(rotation) + 0.5)[..., None]
            object_pixels = np.clip(colour * shade, 0, 255)
            alpha = np.asarray(mask, np.float32)[..., None] / 255
            pixels = pixels * (1 - alpha) + object_pixels * alpha
            pixels += rng.normal(0, 6, pixels.shape)  # sensor grain
            out = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize(
                (size, size), Image.LANCZOS)
            out.save(os.path.join(root, name, f"{i:04d}.png"))
    return root


def _draw_shape(draw, name, cx, cy, r, rotation):
    """Draws class `name` filled (255) on a mask."""
    def polygon(count, radii, start=rotation):
        angles = start + np.arange(count * len(radii)) * 2 * np.pi / (count * len(radii))
        rr = np.tile(radii, count)
        return [(cx + q * np.cos(t), cy + q * np.sin(t)) for q, t in zip(rr * r, angles)]
    if name == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "square":
        draw.polygon(polygon(4, [1.0]), fill=255)
    elif name == "triangle":
        draw.polygon(polygon(3, [1.0]), fill=255)
    elif name == "diamond":
        draw.polygon(polygon(2, [1.0, 0.5]), fill=255)
    elif name == "hexagon":
        draw.polygon(polygon(6, [1.0]), fill=255)
    elif name == "star":
        draw.polygon(polygon(5, [1.0, 0.42]), fill=255)
    elif name == "cross":
        w = 0.3
        arm = [(-1, -w), (1, -w), (1, w), (-1, w)]
        for turn in (rotation, rotation + np.pi / 2):
            c, s = np.cos(turn), np.sin(turn)
            draw.polygon([(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in arm],
                         fill=255)
    elif name == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - 0.55 * r, cy - 0.55 * r, cx + 0.55 * r, cy + 0.55 * r], fill=0)
    elif name == "ellipse":
        points = [(cx + r * np.cos(t) * np.cos(rotation) - 0.45 * r * np.sin(t) * np.sin(rotation),
                   cy + r * np.cos(t) * np.sin(rotation) + 0.45 * r * np.sin(t) * np.cos(rotation))
                  for t in np.linspace(0, 2 * np.pi, 48, endpoint=False)]
        draw.polygon(points, fill=255)
    elif name == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ox, oy = 0.45 * r * np.cos(rotation), 0.45 * r * np.sin(rotation)
        draw.ellipse([cx + ox - 0.85 * r, cy + oy - 0.85 * r, cx + ox + 0.85 * r,
                      cy + oy + 0.85 * r], fill=0)
    else:
        raise ValueError(f"unknown shape {name!r}; known: {', '.join(SCENE_CLASSES)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kws", help="write keyword features to this .npz")
    parser.add_argument("--images", help="write a shape-image folder here")
    parser.add_argument("--scenes", help="write a photo-like 10-class image folder here")
    parser.add_argument("--per_class", type=int, default=None,
                        help="images per class (default: 40 with --images, 150 with --scenes)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side in pixels (default: 48 with --images, 96 with --scenes)")
    args = parser.parse_args()
    if args.kws:
        print("wrote", keyword_features(args.kws))
    if args.images:
        print("wrote", shape_images(args.images, per_class=args.per_class or 40,
                                    size=args.size or 48))
    if args.scenes:
        print("wrote", scene_images(args.scenes, per_class=args.per_class or 150,
                                    size=args.size or 96))


if __name__ == "__main__":
    main()
