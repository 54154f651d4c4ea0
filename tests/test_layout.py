"""The package's layering: imports only go downwards; ``import fianet_mmseg`` stays light."""
from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / 'fianet_mmseg'
#: Folders of the command-line scripts: argument parsing and a call into the package.
SCRIPT_FOLDERS = ('tools', 'demo', 'data_prep')
#: ARCHITECTURE.md states the rules this file enforces; they are read from it.
ARCHITECTURE = (REPO / 'ARCHITECTURE.md').read_text(encoding='utf-8')


def _layers_of_the_architecture() -> dict:
    """The layer table of ARCHITECTURE.md: ``| `part` | layer | what |`` rows."""
    return {name: int(layer) for name, layer in
            re.findall(r'^\| `(\w+)` \| (\d+) \|', ARCHITECTURE, flags=re.M)}


def _limit(what: str) -> int:
    """A size limit of ARCHITECTURE.md ("... at most **N** ...") by what it limits."""
    found = re.search(what + r'[^*]*\*\*(\d+)\*\*', ARCHITECTURE)
    assert found, f'ARCHITECTURE.md states no limit for {what!r}'
    return int(found.group(1))


#: Layer of each top-level part of the package: a module may import from its own
#: part and from parts of LOWER layers only (ARCHITECTURE.md, "The rooms and their layers").
LAYERS = _layers_of_the_architecture()
#: Longest module of the package, longest script, and the image demo.
MAX_MODULE_LINES = _limit('a module of the package has')
MAX_SCRIPT_LINES = _limit('a script in')
MAX_IMAGE_DEMO_LINES = _limit('`demo/image_demo.py`')


def _part(module: str) -> str | None:
    """``fianet_mmseg.models.layers.fiam`` -> ``models`` (None for the package itself)."""
    names = module.split('.')
    return names[1] if len(names) > 1 else None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _all_imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a source file, at any depth.

    ``from package import name`` gives ``package.name`` when that is a module of
    the package, else ``package``.
    """
    module = _module_name(path)
    package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ''
            submodules = [f'{target}.{alias.name}' for alias in node.names
                          if _source_of(f'{target}.{alias.name}') is not None]
            found += [(node.lineno, name) for name in submodules]
            if len(submodules) < len(node.names):
                found.append((node.lineno, target))
    return found


def _source_of(module: str) -> Path | None:
    """The file of a module of the repository (``fianet_mmseg.x.y``), or None."""
    base = REPO.joinpath(*module.split('.'))
    for path in (base.with_suffix('.py'), base / '__init__.py'):
        if path.is_file():
            return path
    return None


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in a source file."""
    return [(line, name) for line, name in _all_imports(path)
            if name == 'fianet_mmseg' or name.startswith('fianet_mmseg.')]


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == '.py' and p.name != '__init__.py') or (p / '__init__.py').is_file()}
    assert parts == set(LAYERS)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for path in sorted(PACKAGE.rglob('*.py')):
        importer = _part(_module_name(path))
        if importer is None:
            continue
        for line, target in _imported_modules(path):
            imported = _part(target)
            if imported is None or imported == importer:
                continue
            if LAYERS[imported] >= LAYERS[importer]:
                upward.append(f'{path.relative_to(REPO)}:{line} ({importer}) imports {target}')
    assert not upward, '\n'.join(upward)


def test_the_layer_check_sees_relative_and_absolute_imports(tmp_path):
    """The walker resolves ``from ..models.utils import X`` inside a subpackage."""
    nested = PACKAGE / 'datasets' / 'transforms' / 'formatting.py'
    targets = {name for _, name in _imported_modules(nested)}
    assert 'fianet_mmseg.constants' in targets


def _scripts() -> list[Path]:
    return sorted(p for folder in SCRIPT_FOLDERS for p in (REPO / folder).rglob('*.py'))


def _is_sys_path(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == 'path' and \
        isinstance(node.value, ast.Name) and node.value.id == 'sys'


def test_no_sys_path_manipulation_outside_the_tests():
    """Scripts and the package import the installed (or working-tree) package, nothing else."""
    found = [f'{path.relative_to(REPO)}:{node.lineno}'
             for path in [*_scripts(), *sorted(PACKAGE.rglob('*.py'))]
             for node in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
             if _is_sys_path(node)]
    assert not found, f'sys.path used in: {found}'


def test_scripts_import_the_package_not_each_other_nor_the_tests():
    """What a script shares with another script or a test lives in the package; the test
    oracle stays in tests/ (a script must run from an installed copy without tests/)."""
    test_modules = {p.stem for p in (REPO / 'tests').glob('*.py')} | {'tests'}
    bad = []
    for path in [*_scripts(), *sorted(PACKAGE.rglob('*.py'))]:
        siblings = {p.stem for p in path.parent.glob('*.py')} - {path.stem}
        for line, name in _all_imports(path):
            top = name.split('.')[0]
            if top in test_modules or (path.parent != PACKAGE and top in siblings
                                       and not name.startswith('fianet_mmseg')):
                bad.append(f'{path.relative_to(REPO)}:{line} imports {name}')
    assert not bad, '\n'.join(bad)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at any depth, lazily too)."""
    return {_module_name(path): {name for _, name in _imported_modules(path)
                                 if _source_of(name) is not None} - {_module_name(path)}
            for path in sorted(PACKAGE.rglob('*.py'))}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_circle():
    """Package modules (imports inside functions included) import each other one way only;
    a package's ``__init__`` re-exporting its modules counts, so a module must not import
    its own package's ``__init__``."""
    assert _circles(_import_graph()) == []


def test_the_circle_check_finds_a_circle():
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert _circles(graph) == [['a', 'b', 'c']]
    assert _circles({'a': {'b'}, 'b': set()}) == []


def _lines(path: Path) -> int:
    return len(path.read_text(encoding='utf-8').splitlines())


def test_modules_are_short_and_the_image_demo_is_thin():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob('*.py')
            if (n := _lines(p)) > MAX_MODULE_LINES}
    assert not long, f'split these modules (over {MAX_MODULE_LINES} lines): {long}'
    demo = _lines(REPO / 'demo' / 'image_demo.py')
    assert demo <= MAX_IMAGE_DEMO_LINES, f'demo/image_demo.py has {demo} lines'


def test_scripts_are_thin():
    """A script is a parser and a call: what it does beyond that lives in the package."""
    assert MAX_IMAGE_DEMO_LINES <= MAX_SCRIPT_LINES < MAX_MODULE_LINES
    long = {str(p.relative_to(REPO)): n for p in _scripts() if (n := _lines(p)) > MAX_SCRIPT_LINES}
    assert not long, f'move the work of these scripts into the package (over ' \
        f'{MAX_SCRIPT_LINES} lines): {long}'


def test_engine_holds_registered_training_parts_only():
    from mmseg.registry import HOOKS, LOOPS, OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS

    import fianet_mmseg.engine as engine

    registered = set()
    for registry in (HOOKS, LOOPS, OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS):
        registered |= set(registry.module_dict.values())
    classes = [obj for name in engine.__all__ if inspect.isclass(obj := getattr(engine, name))]
    assert classes and all(cls in registered for cls in classes)
    helpers = [p.name for p in (PACKAGE / 'engine').rglob('*.py')
               if any(word in p.name for word in ('bench', 'profil'))]
    assert not helpers, f'benchmarking / profiling code belongs in benchmarking/: {helpers}'


@pytest.mark.slow
@pytest.mark.parametrize('module, not_loaded', [
    ('fianet_mmseg', ('spacy', 'transformers', 'mmseg.models')),
    ('fianet_mmseg.datasets', ('spacy', 'transformers')),
    ('fianet_mmseg.text', ('spacy', 'transformers')),
])
def test_imports_stay_lazy(module, not_loaded):
    code = (f'import sys, {module}; '
            f'print(sorted(m for m in {not_loaded!r} if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == '[]'


def test_the_architecture_names_existing_paths():
    """The files and folders ARCHITECTURE.md names exist (moving one means updating the map;
    test_every_part_has_a_layer checks that its layer table covers the package)."""
    named = set(re.findall(r'`((?:fianet_mmseg|tools|demo|data_prep|configs|tests)/[^`\s]*)`',
                           ARCHITECTURE))
    concrete = {path.rstrip('/') for path in named if '<' not in path and '{' not in path}
    assert len(concrete) > 5
    missing = sorted(path for path in concrete if not any(REPO.glob(path)))
    assert not missing, f'ARCHITECTURE.md names paths that do not exist: {missing}'
    for folder in SCRIPT_FOLDERS:
        assert f'`{folder}/`' in ARCHITECTURE
