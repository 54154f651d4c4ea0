"""The package's layering: imports only go downwards; ``import fianet_mmseg`` stays light."""
from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / 'fianet_mmseg'

#: Layer of each top-level part of the package: a module may import from its own
#: part and from parts of LOWER layers only.
LAYERS = {
    'version': 0, 'constants': 0, 'compat': 0, 'utils': 0,
    'text': 1, 'checkpoint': 1,
    'datasets': 2, 'models': 2, 'engine': 2,
    'evaluation': 3, 'visualization': 3,
    'apis': 4,
}


def _part(module: str) -> str | None:
    """``fianet_mmseg.models.layers.fiam`` -> ``models`` (None for the package itself)."""
    names = module.split('.')
    return names[1] if len(names) > 1 else None


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of the package in a source file."""
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
            if target == 'fianet_mmseg':  # from fianet_mmseg import models
                found += [(node.lineno, f'fianet_mmseg.{alias.name}') for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name.startswith('fianet_mmseg')]


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
    assert not helpers, f'benchmarking / profiling helpers belong in tools/: {helpers}'


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
