"""The custom Keras objects a run's models may hold: greenlite's own and the user's.

`models/` and `export/` never import them from here: the runner hands them a
dict (`resolve`) or, to the converter's process, the module names to import
(`modules`).
"""
# greenlite's own serializable classes: ternary/binary weight quantizers,
# bounded-mask attention, and the zoo's custom layers (the Transformer's
# position embedding).
GREENLITE_MODULES = ("pipeline.lowbit", "models.attention", "models.tiny_transformer")


def modules(user_spec=None):
    """Module names (or a .py path) that define every custom object of a run."""
    return list(GREENLITE_MODULES) + ([user_spec] if user_spec else [])


def resolve(user_spec=None):
    """{class name: class} of greenlite's custom objects and those of `user_spec`
    (the recipe's model.custom_objects: a module name or a .py file)."""
    from models import user
    objects = {}
    for spec in modules(user_spec):
        objects.update(user.custom_objects_from(spec))
    return objects
