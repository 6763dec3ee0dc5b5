"""The import graph of fastmlp's Python modules: prints every module's imports of the package,
then any circle, then any module that imports the package root back.

    python tools/import_graph.py            # fastmlp/ beside this folder
    python tools/import_graph.py PACKAGE_DIR

Every import counts, at any depth of the code (a function's lazy import too), and
importlib.import_module("...") with a literal name. `from fastmlp import _x` is an import of the
submodule _x; `import fastmlp` or `from fastmlp import MLPClassifier` is one of the root.
Exit status 1 when there is a circle or a module imports the root.
"""
import ast
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1
                    else pathlib.Path(__file__).resolve().parent.parent / "fastmlp")
pkg = root.name
mods = {}
for path in sorted(root.rglob("*.py")):
    parts = path.relative_to(root.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    mods[name] = path
known = set(mods) | {f"{pkg}._engine"}  # the compiled engine (a leaf), whether .pyx or package

def target(name):
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name

edges, root_users = {m: set() for m in mods}, []
for mod, path in mods.items():
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = mod if is_pkg else mod.rpartition(".")[0]
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}".rstrip(".")
            for a in node.names:
                full = f"{base}.{a.name}"
                names.append(full if target(full) == full else base)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            names = [node.args[0].value]
        for n in names:
            t = target(n)
            if t and t != mod and (t == pkg or t.startswith(pkg + ".")):
                edges[mod].add(t)
                if t == pkg and mod != pkg:
                    root_users.append(f"{mod} imports the root ({n})")

for m in sorted(edges):
    print(f"{m} -> {', '.join(sorted(edges[m])) or '-'}")
# circles: Tarjan's strongly connected components
index, low, stack, on, sccs = {}, {}, [], set(), []


def visit(v):
    index[v] = low[v] = len(index); stack.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop(); on.discard(w); scc.append(w)
            if w == v:
                break
        if len(scc) > 1:
            sccs.append(sorted(scc))


sys.setrecursionlimit(10000)
for v in edges:
    if v not in index:
        visit(v)
print("circles:", sccs or "none")
print("imports of the root:", sorted(set(root_users)) or "none")
sys.exit(1 if sccs or root_users else 0)
