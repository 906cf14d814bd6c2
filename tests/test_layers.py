"""The package's architecture: imports run one way, downward, and no module is in a circle.

Read from the source (every `import` and `from ... import`, deferred ones included), so
that a new upward import fails here rather than in a reviewer's head.
"""

import ast
import collections
import pathlib

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "artclf"

# Each room of the package and its level: a module may import its own room and rooms of
# lower levels only. Entry points (artclf/*.py that parse flags) sit above everything.
LEVELS = {
    "scheme": 0, "mesh": 0, "runtime": 0,
    "inference": 1,
    "data": 2,
    "models": 3, "eval": 3, "museums": 3,
    "run": 4,
    "train": 5,
    "adapt": 6,
    "serve": 7,
}
ENTRY_POINTS = {"__init__", "evaluate", "predict", "crossval", "imagenet_check", "adapt"}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(REPO_ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
  """Every artclf module `path` imports (a `from x import y` counts y when y is a module)."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      found.update(a.name for a in node.names if a.name.startswith("artclf"))
    elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("artclf"):
      for alias in node.names:
        candidate = f"{node.module}.{alias.name}"
        is_module = (REPO_ROOT / (candidate.replace(".", "/") + ".py")).exists() or (
            REPO_ROOT / candidate.replace(".", "/")).is_dir()
        found.add(candidate if is_module else node.module)
  return found


def _graph() -> dict[str, set[str]]:
  return {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def _room(module: str) -> str:
  """'artclf.data.dataset' -> 'data'; 'artclf.evaluate' -> 'evaluate'."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_level():
  rooms = {_room(m) for m in _graph()}
  assert rooms - set(LEVELS) - ENTRY_POINTS == set()


def test_imports_run_downward():
  upward = []
  for module, imported in _graph().items():
    room = _room(module)
    if room in ENTRY_POINTS and (module.count(".") <= 1):
      continue  # entry points may import anything
    for target in imported:
      other = _room(target)
      if other != room and other in LEVELS and LEVELS[other] >= LEVELS[room]:
        upward.append(f"{module} imports {target}")
      if other in ENTRY_POINTS and other != "__init__" and target.count(".") == 1:
        upward.append(f"{module} imports the entry point {target}")
  assert not upward, "\n".join(sorted(upward))


def test_no_import_circles():
  graph = _graph()
  modules = set(graph)
  edges = {m: {t for t in graph[m] if t in modules and t != m} for m in graph}
  # A package's __init__ importing its own modules is not a circle of code.
  index, low, stack, on_stack, circles = {}, {}, [], set(), []
  counter = [0]

  def visit(node):  # Tarjan's strongly connected components
    index[node] = low[node] = counter[0]
    counter[0] += 1
    stack.append(node)
    on_stack.add(node)
    for nxt in edges[node]:
      if nxt not in index:
        visit(nxt)
        low[node] = min(low[node], low[nxt])
      elif nxt in on_stack:
        low[node] = min(low[node], index[nxt])
    if low[node] == index[node]:
      component = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
          break
      if len(component) > 1:
        circles.append(sorted(component))

  for module in sorted(edges):
    if module not in index:
      visit(module)
  assert not circles, circles


def test_only_the_scheme_module_names_the_shared_sets_tasks():
  """Nothing outside artclf/scheme.py (and the harvester, which labels in that scheme)
  spells out the three tasks as a list."""
  offenders = collections.defaultdict(list)
  for path in PACKAGE.rglob("*.py"):
    room = _room(_module_name(path))
    if path.name == "scheme.py" or room == "museums":
      continue
    for number, line in enumerate(path.read_text().splitlines(), 1):
      if all(task in line for task in ('"culture"', '"medium"', '"period"')):
        offenders[str(path.relative_to(REPO_ROOT))].append(number)
  assert not offenders, dict(offenders)
