"""Fitting settings every training stage shares (pipeline/training.py)."""
import pytest

from tests.conftest import stage_context


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_the_learning_rate_schedule(trained_model, digits, tmp_path, schedule):
    from pipeline import training
    from pipeline.backend import keras
    from pipeline.stages.base import clone
    rates = []

    class Rate(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            rates.append(float(keras.backend.get_value(self.model.optimizer.learning_rate)))

    cfg = training.FitConfig(epochs=2, batch_size=128, learning_rate=0.01, lr_schedule=schedule)
    training.fit(clone(trained_model), digits, cfg, stage_context(tmp_path, "train"),
                 callbacks=[Rate()])
    steps = -(-len(digits.train) // 128)
    assert len(rates) == 2 * steps
    assert rates[0] == pytest.approx(0.01)
    if schedule == "constant":
        assert rates == pytest.approx([0.01] * len(rates))
    else:
        # The optimizer's rate is read before its step updates it: from the
        # second batch on, down to zero over both epochs, never up.
        assert all(a > b for a, b in zip(rates[1:], rates[2:]))
        assert rates[-1] < 0.01 * 0.05
