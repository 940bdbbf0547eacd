"""`distill`: train a new, smaller student to imitate a teacher (Hinton et al. 2015)."""
import dataclasses
import os

from pipeline.lazy_backend import keras
from pipeline.errors import RecipeError
from pipeline.stages.base import Stage
from pipeline.training import FitConfig, accuracy, fit, resolve_teacher, teacher_names


class Distill(Stage):
    """Builds the student and trains it on the distillation loss against the teacher.

    The teacher is `teacher:` (an earlier stage or a saved model file, or a
    list of them: an ensemble, pipeline/distillation.py), by default the
    model this stage receives. The student is a zoo model (with
    `student_options`, e.g. a width multiplier) or a saved model file; it must
    take the same input and give the same output shape as the teacher. The
    stage reports teacher and student accuracy, parameters and float32 size.
    """

    @dataclasses.dataclass
    class Config(FitConfig):
        # A zoo model name (see models/) or a saved model file.
        student: str = "digits_cnn"
        student_options: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def notes(cls, name, metrics):
        d = metrics.get("distillation")
        if not d:
            return super().notes(name, metrics)
        side = lambda who: (f"{who} `{d[who]['model']}`: Keras accuracy "
                            f"{d[who]['keras_accuracy']:.4f}, {d[who]['params']:,} parameters, "
                            f"{d[who]['float32_bytes']:,} bytes as float32")
        return [f"stage `{name}` distilled (T={d['temperature']}, alpha={d['alpha']}): "
                f"{side('teacher')}; {side('student')}"] + super().notes(name, metrics)

    def run(self, model, data, ctx):
        import models
        cfg = self.config
        where = f"stages.{ctx.stage_name}"
        teacher = resolve_teacher(cfg.teacher, ctx, where) if cfg.teacher else model
        keras.utils.set_random_seed(ctx.seed)
        if cfg.student in models.MODELS:
            student = models.build(cfg.student, data.input_shape, data.num_classes,
                                   cfg.student_options)
        elif os.path.exists(cfg.student):
            # The user's file, tf_keras or Keras 3 (translated), as for model.name.
            student = models.build(cfg.student, data.input_shape, data.num_classes,
                                   custom_objects=ctx.custom_objects)
        else:
            raise RecipeError(f"{where}.student: {cfg.student!r} is neither a zoo model "
                              f"({', '.join(sorted(models.MODELS))}) nor a saved model file")
        if tuple(student.input_shape[1:]) != tuple(teacher.input_shape[1:]):
            raise RecipeError(f"{where}.student: it takes {student.input_shape[1:]} but the "
                              f"teacher {teacher.input_shape[1:]}; they must match")
        fit(student, data, cfg, ctx, teacher=teacher)
        ctx.metrics["distillation"] = {
            "teacher": _summary(teacher, data, " + ".join(teacher_names(cfg.teacher))
                                or "input model"),
            "student": _summary(student, data, cfg.student),
            "alpha": cfg.alpha, "temperature": cfg.temperature,
        }
        return student


def _summary(model, data, name):
    params = int(model.count_params())
    return {"model": name, "params": params, "float32_bytes": 4 * params,
            "keras_accuracy": accuracy(model, data.judged)}
