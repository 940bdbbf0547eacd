"""Which searched trials form the Pareto front, and which of them is `best`.

A trial row (pipeline/search.py's search.json) carries `figures` (the
exported file's measured objectives), `loss` (against the reference file,
on the budget's measure) and `pareto`. Pure functions of those rows and the
recipe's `search:` section (pipeline/recipe.py SearchConfig): no Optuna, no
TensorFlow, no files.
"""


from export.budget import Budget


def budget_of(config):
    """The search's budget (the recipe's `search.budget`, {max_drop_points: 1})."""
    return Budget.parse(config.budget)


def metric(variant, budget):
    """(the figure the budget is on, the variant's value of it)."""
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    return budget.metric, variant[budget.metric]


def loss(variant, reference, budget):
    """The loss the budget limits (export/budget.py): accuracy points below, or
    perplexity percent above, the reference file's."""
    budget = budget if isinstance(budget, Budget) else Budget.parse(budget)
    return budget.loss(variant, reference)


def within_limits(row, limits):
    """Whether a trial's figures are within every limit (an unmeasured figure is not):
    at most each limit, at least it for a figure held from below (battery days)."""
    return all(excess(row["figures"].get(k), k, limit) <= 0 for k, limit in limits.items())


def excess(value, key, limit):
    """How far `value` of figure `key` lies beyond `limit`, as a fraction of the limit
    (<= 0: within; 1.0 for a figure not measured). Battery days are held from below."""
    from pipeline.recipe import AT_LEAST_LIMITS
    if value is None:
        return 1.0
    return ((limit - value) if key in AT_LEAST_LIMITS else (value - limit)) / limit


def choose(rows, config):
    """`best` among trials within budget and within `limits`: of those whose loss
    is at most the budget less `select_margin`, the smallest by the first
    objective (`select: smallest`) or the least loss (`most_accurate`; ties to
    the lower validation cross-entropy, then the smaller). When none clears
    the margin, the least loss within budget (`clears_margin` tells the
    caller so). None when no trial is within budget."""
    budget = budget_of(config)
    candidates = [r for r in rows if budget.allows(r["loss"]) and within_limits(r, config.limits)]
    clear = [r for r in candidates if clears_margin(r, config)]

    def size(r):
        value = r["figures"][config.objectives[0]]
        return float("inf") if value is None else value

    def least_loss(r):
        # Files that a few hundred examples score alike (a third of a point
        # each) are told apart by the cross-entropy, which moves with every
        # example's confidence: on seed 31 three front files tied at -0.37
        # on validation; on test the smallest lost 1.67 points, the one with
        # the lowest cross-entropy 0.56.
        entropy = r["figures"].get("cross_entropy")
        return r["loss"], float("inf") if entropy is None else entropy, size(r)

    if clear:
        return min(clear, key=(lambda r: (size(r), r["loss"])) if config.select == "smallest"
                   else least_loss)
    # A validation split of a few hundred examples moves the loss by a third of
    # a point per example: when the reference scored every example, no file may
    # clear the margin though some meet the budget (a 270/270 reference; on
    # test its front's 10,752 B file lost 0.28 points). Shipping nothing is
    # then the worst answer: the safest file within budget is chosen, flagged.
    return min(candidates, key=least_loss, default=None)


def clears_margin(row, config):
    """Whether a trial's loss is within the budget less `select_margin`."""
    return budget_of(config).allows(row["loss"], config.select_margin)


def pareto_front(rows, objectives):
    """The numbers of the rows no other row beats on every objective and the loss."""
    axes = list(dict.fromkeys(list(objectives) + ["loss"]))
    return {r["number"] for r in rows if not any(_dominates(o, r, axes) for o in rows)}


def _dominates(a, b, axes):
    fa = [a["figures"][k] for k in axes]
    fb = [b["figures"][k] for k in axes]
    return all(x <= y for x, y in zip(fa, fb)) and any(x < y for x, y in zip(fa, fb))
