"""How far a quantized language model's next-token distributions are from float's, as llama.cpp reports it.

`kl_divergence` is KL(float || quantized) per position in nats, from logits
(softmax computed here, stably); `top1_agreement` is the fraction of
positions where both pick the same next token. Perplexity alone hides a
model that is as uncertain as float but wrong in different places; these
two do not.

    >>> import numpy as np
    >>> p = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    >>> q = np.log(np.array([[0.5, 0.5], [0.1, 0.9]]))
    >>> [round(float(v), 4) for v in kl_divergence(p, q)]
    [0.0, 1.7578]
    >>> float(top1_agreement(p, q))
    0.5
"""
import numpy as np


def log_softmax(logits):
    """log softmax over the last axis, in float64."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl_divergence(reference_logits, logits):
    """KL(softmax(reference) || softmax(logits)) per row, in nats."""
    log_p, log_q = log_softmax(reference_logits), log_softmax(logits)
    return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def top1_agreement(reference_logits, logits):
    """The fraction of rows whose argmax is the same in both."""
    return float(np.mean(np.argmax(reference_logits, -1) == np.argmax(logits, -1)))


def position_logits(runner, windows):
    """[windows x positions, vocabulary] logits of a generative file, fed each window's
    tokens one decode step at a time from an empty cache (export.generative.SignatureRunner)."""
    rows = []
    for window in windows:
        runner.reset()
        for token in window:
            rows.append(runner.feed([int(token)]))
    return np.stack(rows)


def compare(reference_logits, logits):
    """{mean_kl, max_kl, top1_agreement, positions} of `logits` against the reference's."""
    kl = kl_divergence(reference_logits, logits)
    return {"mean_kl": float(kl.mean()), "max_kl": float(kl.max()),
            "top1_agreement": top1_agreement(reference_logits, logits), "positions": len(kl)}
