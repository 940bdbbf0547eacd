"""Knowledge distillation (Hinton et al. 2015) as a Keras loss on packed targets.

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T))

The teacher's logits are packed beside the labels: targets = [label,
teacher logit 0, ..., teacher logit C-1]; computed once before training for
data in memory, per batch as it is read for streamed data. The
student is then trained with an ordinary `model.fit`, so it is the model
being fit, not a sub-model nested in a distiller. That matters for tfmot:
its pruning-step callback collects the wrapped layers of the model being fit,
and a pruned or QAT student works as usual (tested).
"""
import numpy as np

from pipeline.backend import keras, tf
from pipeline.outputs import outputs_probabilities


def logits_of(model, x, batch_size=256):
    """The model's logits on x (log-probabilities if it ends in a softmax:
    they give the same softened distribution at every temperature)."""
    out = model.predict(x, batch_size=batch_size, verbose=0).astype(np.float32)
    return np.log(np.clip(out, 1e-12, 1.0)) if outputs_probabilities(model) else out


def ensemble(teachers, where="teacher"):
    """One model whose output is the mean of the teachers' logits (of their
    log-probabilities where a teacher ends in a softmax).

    Averaged logits are the geometric mean of the teachers' distributions:
    one set of logits, softened by the distillation temperature like a
    single teacher's. Several independently trained teachers make a better
    teacher than any one of them: distilling an ensemble into one small
    model is where Hinton et al. (2015) start. The student still runs alone.
    """
    from pipeline.errors import RecipeError
    shapes = {(tuple(t.input_shape[1:]), tuple(t.output_shape[1:])) for t in teachers}
    if len(shapes) != 1 or len(teachers[0].inputs) != 1:
        raise RecipeError(f"{where}.teacher: an ensemble's teachers must each take one input of "
                          f"the same shape and give the same output shape; got (input, output) "
                          f"shapes {sorted(shapes)}")
    inputs = keras.Input(shape=teachers[0].input_shape[1:], dtype=teachers[0].inputs[0].dtype)
    outputs = []
    for index, teacher in enumerate(teachers):
        # Under a name of its own (the same layers, a new graph over them):
        # Keras refuses two nested models that share a name, and teachers of
        # one architecture do.
        teacher = keras.Model(teacher.inputs, teacher.outputs, name=f"teacher_{index}")
        out = tf.cast(teacher(inputs, training=False), tf.float32)
        if outputs_probabilities(teacher):
            out = keras.layers.Lambda(_log_probabilities, name=f"log_probabilities_{index}")(out)
        outputs.append(out)
    return keras.Model(inputs, keras.layers.Average(name="mean_logits")(outputs),
                       name="ensemble")


def _log_probabilities(p):
    return tf.math.log(tf.clip_by_value(p, 1e-12, 1.0))


def pack(labels, teacher_logits):
    """[label, teacher logits...] per example, as float32."""
    return np.concatenate([np.asarray(labels, np.float32)[:, None], teacher_logits], axis=1)


def packer(teacher):
    """A tf.data map function (x, labels) -> (x, packed targets) for streamed
    batches: the teacher runs on each batch as it is read."""
    probabilities = outputs_probabilities(teacher)

    def pack_batch(x, labels):
        logits = tf.cast(teacher(x, training=False), tf.float32)
        if probabilities:
            logits = tf.math.log(tf.clip_by_value(logits, 1e-12, 1.0))
        return x, tf.concat([tf.cast(labels, tf.float32)[:, None], logits], axis=1)

    return pack_batch


def distillation_loss(labels, student_logits, teacher_logits, alpha, temperature):
    """The loss above, per example (a tensor of shape [batch])."""
    ce = keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
    teacher = tf.nn.softmax(teacher_logits / temperature)
    log_student = tf.nn.log_softmax(student_logits / temperature)
    log_teacher = tf.math.log(tf.clip_by_value(teacher, 1e-12, 1.0))
    kl = tf.reduce_sum(teacher * (log_teacher - log_student), axis=-1)
    return alpha * ce + (1.0 - alpha) * temperature ** 2 * kl


class DistillationLoss(keras.losses.Loss):
    """Keras loss on packed targets; the student's outputs are logits or probabilities."""

    def __init__(self, alpha=0.1, temperature=4.0, student_probabilities=False,
                 name="distillation", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha, self.temperature = alpha, temperature
        self.student_probabilities = student_probabilities

    def call(self, y_true, y_pred):
        labels = tf.cast(y_true[:, 0], tf.int32)
        student = y_pred
        if self.student_probabilities:
            student = tf.math.log(tf.clip_by_value(y_pred, 1e-12, 1.0))
        return distillation_loss(labels, student, y_true[:, 1:], self.alpha, self.temperature)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "temperature": self.temperature,
                "student_probabilities": self.student_probabilities}


class PackedAccuracy(keras.metrics.Mean):
    """Top-1 accuracy against the label column of packed targets."""

    def __init__(self, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = tf.cast(y_true[:, 0], tf.int64)
        hits = tf.cast(tf.equal(tf.argmax(y_pred, axis=-1), labels), tf.float32)
        return super().update_state(hits, sample_weight)
