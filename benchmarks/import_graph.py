"""The drawing of greenlite's imports: arrows between its modules, cycles, upward arrows.

    python benchmarks/import_graph.py [--root=.] [--dot=imports.dot]

Counts every `import` of one greenlite module by another (function-level
imports included: they are dependencies all the same), the import cycles
(strongly connected components of more than one module), and the arrows that
climb back up: `models/` and `export/` are the lower layers, and an import
from them into `pipeline/` is one, except into the foundation every layer
shares (the TensorFlow backend, errors, atomic files).

The allowed direction is written down once, in `MAY_IMPORT`; the test
tests/test_layering.py holds the tree to 0 cycles and 0 upward arrows.
"""
import argparse
import ast
import os

PACKAGES = ("pipeline", "models", "export")
# Which package's modules each package may import: the runner's package uses
# both lower ones; export/ (conversion, measurement) reads models/ (saved
# models, attention layers); models/ stands alone.
MAY_IMPORT = {"pipeline": {"pipeline", "export", "models"}, "export": {"export", "models"},
              "models": {"models"}}
# Modules of pipeline/ every layer may use: TensorFlow set-up, errors, atomic files.
FOUNDATION = {"pipeline.backend", "pipeline.lazy_backend", "pipeline.errors", "pipeline.files"}


def modules(root):
    """{module name: path} of every .py file under the packages."""
    found = {}
    for package in PACKAGES:
        for directory, _, files in os.walk(os.path.join(root, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(directory, name)
                    module = os.path.relpath(path, root)[:-3].replace(os.sep, ".")
                    found[module.removesuffix(".__init__")] = path
    return found


def arrows(root):
    """{(importer, imported)} between greenlite modules."""
    known = modules(root)
    edges = set()
    for module, path in known.items():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                # `from pipeline import report` imports a module; `from x import f` a name.
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                         for a in node.names]
            for name in names:
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    edges.add((module, name))
    return edges


def cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(edges):
    """Arrows MAY_IMPORT does not allow (into the foundation aside)."""
    return sorted((a, b) for a, b in edges if b not in FOUNDATION
                  and b.split(".")[0] not in MAY_IMPORT[a.split(".")[0]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--dot", help="also write the graph in Graphviz dot")
    args = parser.parse_args()
    edges = arrows(args.root)
    found = cycles(edges)
    up = upward(edges)
    print(f"modules: {len(modules(args.root))}; arrows: {len(edges)}; cycles: {len(found)}; "
          f"upward arrows: {len(up)}")
    for component in found:
        print("  cycle: " + " <-> ".join(component))
    for a, b in up:
        print(f"  upward: {a} -> {b}")
    if args.dot:
        with open(args.dot, "w") as f:
            f.write("digraph greenlite {\n" + "".join(f'  "{a}" -> "{b}";\n'
                                                     for a, b in sorted(edges)) + "}\n")


if __name__ == "__main__":
    main()
