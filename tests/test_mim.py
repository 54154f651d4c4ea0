"""mim metadata (model-index.yml + configs/metafile.yaml), requirement files, house papers."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO, load_config
from packaging.requirements import Requirement

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip('tomli')

#: The paper's test-split numbers (docs/reference.md section 8), per config id: (data set, metrics).
PAPER = {
    'fianet_swin-b_rrsisd': ('RRSIS-D', {'P@0.5': 74.46, 'P@0.7': 56.31, 'P@0.9': 24.13,
                                         'oIoU': 76.91, 'mIoU': 64.01}),
    'fianet_swin-b_refsegrs': ('RefSegRS', {'P@0.5': 84.09, 'P@0.7': 61.86, 'P@0.9': 7.10,
                                            'oIoU': 78.32, 'mIoU': 68.67}),
}
PAPER_URL = 'https://arxiv.org/abs/2409.13637'
REQUIREMENTS = REPO / 'requirements'


@pytest.fixture(scope='module')
def model_index():
    from modelindex.load_model_index import load

    return load(str(REPO / 'model-index.yml'))


def _models(model_index) -> dict:
    return {model.name: model for model in model_index.models}


def test_model_index_structure(model_index):
    """Every model names an existing config and a collection; metrics are numbers."""
    collections = {c.name: c for c in model_index.collections}
    assert set(collections) == {'FIANet'}
    paper = collections['FIANet'].paper
    assert paper['Title'] == ('Exploring Fine-Grained Image-Text Alignment for Referring Remote '
                              'Sensing Image Segmentation')
    assert paper['URL'] == PAPER_URL
    # OpenMMLab writes paths relative to the repository root; modelindex resolves a README
    # against the metafile's folder, so its check is left out for that one field.
    assert (REPO / collections['FIANet'].readme).is_file()
    errors = [e for e in model_index.check(silent=True) if 'README' not in e]
    assert not errors, errors
    models = _models(model_index)
    assert set(models) == set(PAPER)
    for name, model in models.items():
        assert model.in_collection in collections, name
        assert (REPO / model.config).is_file(), model.config
        assert Path(model.config).stem == name  # mim's config id is the config's basename
        assert model.results, name
        for result in model.results:
            assert result.task == 'Referring Remote Sensing Image Segmentation'
            for metric, value in result.metrics.items():
                assert isinstance(value, (int, float)) and not isinstance(value, bool), \
                    f'{name}: {metric}={value!r}'


def test_model_index_holds_the_paper_numbers(model_index):
    for name, model in _models(model_index).items():
        dataset, metrics = PAPER[name]
        [result] = model.results
        assert result.dataset == dataset
        assert result.metrics == metrics, name


def test_model_metadata_matches_the_configs(model_index):
    """Epochs, batch size and training data of each model are what its config trains with."""
    for name, model in _models(model_index).items():
        meta = model.metadata.data
        cfg = load_config(Path(model.config).name)
        assert meta['Epochs'] == cfg.train_cfg.max_epochs, name
        assert meta['Batch Size'] == cfg.train_dataloader.batch_size, name
        data_root = Path(cfg.train_dataloader.dataset.data_root).name  # data/rrsisd
        assert meta['Training Data'].lower().replace('-', '') == data_root, name
        assert meta['Training Data'] == PAPER[name][0]
        assert {'Swin-B', 'BERT-base'} <= set(meta['Architecture'])


def test_mim_search_reads_the_metafile(model_index):
    """What `mim search` builds from the metadata: config ids, per-data-set metric columns, and
    the `--dataset` filter."""
    from mim.commands.search import convert2df, filter_by_training_datasets

    table = convert2df(model_index)
    assert set(table.index) == set(PAPER)
    for name, (dataset, metrics) in PAPER.items():
        row = table.loc[name]
        for metric, value in metrics.items():
            assert row[f'{dataset.lower()}/{metric.lower()}'] == value
        assert row['config'] == f'configs/{name}.py'
        assert row['paper'] == PAPER_URL
        assert row['model'] == 'fianet'
        assert row['converter'].startswith('tools/model_converters/fianet_official_to_mmseg.py')
    assert list(filter_by_training_datasets(table, ['refsegrs']).index) == [
        'fianet_swin-b_refsegrs']


def test_mim_resources_link_the_model_index():
    """``fianet_mmseg/.mim/model-index.yml`` is a relative link to the root file (shipped by
    package-data), and the metafile it imports lies under the linked ``configs``."""
    link = REPO / 'fianet_mmseg' / '.mim' / 'model-index.yml'
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    assert link.resolve() == (REPO / 'model-index.yml').resolve()
    imported = yaml.safe_load(link.read_text())['Import']
    for path in imported:
        assert (link.parent / path).is_file(), path


def _pyproject() -> dict:
    return tomllib.loads((REPO / 'pyproject.toml').read_text(encoding='utf-8'))


def _requirement_file(path: Path) -> list[Requirement]:
    """The requirements of a pip requirement file: comments, options (``--hash``) and line
    continuations removed."""
    text = re.sub(r'\\\n', ' ', path.read_text(encoding='utf-8'))
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        line = re.sub(r'(^|\s)#.*', '', line).strip()
        line = re.sub(r'\s--\S+', '', line).strip()
        if not line:
            continue
        assert not line.startswith('-'), f'{path.name}:{number}: unexpected option {line!r}'
        found.append(Requirement(line))
    return found


def _keyed(requirements) -> dict:
    """name -> requirement (str), with names normalised as pip does; no duplicates."""
    keyed = {}
    for req in requirements:
        name = re.sub(r'[-_.]+', '-', req.name).lower()
        assert name not in keyed, f'{name} listed twice'
        keyed[name] = str(Requirement(str(req)))
    return keyed


def test_requirement_files_match_pyproject():
    """runtime.txt + mminstall.txt list exactly pyproject's dependencies (OpenMMLab packages in
    mminstall.txt), tests.txt the dev extra, optional.txt the remaining extras, demo.txt the demo
    extra: pyproject.toml stays the source of truth, the files cannot drift from it."""
    project = _pyproject()['project']
    declared = _keyed(Requirement(r) for r in project['dependencies'])
    runtime = _keyed(_requirement_file(REQUIREMENTS / 'runtime.txt'))
    mminstall = _keyed(_requirement_file(REQUIREMENTS / 'mminstall.txt'))
    assert set(mminstall) == {name for name in declared if name.startswith('mm')}
    assert not set(runtime) & set(mminstall)
    assert {**runtime, **mminstall} == declared
    extras = {name: _keyed(Requirement(r) for r in reqs)
              for name, reqs in project['optional-dependencies'].items()}
    assert _keyed(_requirement_file(REQUIREMENTS / 'tests.txt')) == extras['dev']
    assert _keyed(_requirement_file(REQUIREMENTS / 'demo.txt')) == extras['demo']
    others = {}
    for name, reqs in extras.items():
        if name not in ('dev', 'demo'):
            others.update(reqs)
    optional = REQUIREMENTS / 'optional.txt'
    listed = _keyed(_requirement_file(optional)) if optional.exists() else {}
    assert listed == others, 'requirements/optional.txt must list the extras besides dev, demo'


def test_requirement_file_parser_sees_hashes_and_comments(tmp_path):
    path = tmp_path / 'r.txt'
    path.write_text('# c\nfoo==1.0 \\\n    --hash=sha256:ab  # pinned\nBar_baz>=2,<3\n')
    assert _keyed(_requirement_file(path)) == {'foo': 'foo==1.0', 'bar-baz': 'Bar_baz<3,>=2'}


#: sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_SHA256 = 'cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30'


def test_license_is_the_apache_2_text():
    data = (REPO / 'LICENSE').read_bytes()
    assert hashlib.sha256(data).hexdigest() == APACHE_2_SHA256
    project = _pyproject()['project']
    assert project['license'] == 'Apache-2.0'
    assert project['license-files'] == ['LICENSE']


def test_citation_and_changelog_follow_the_package():
    """CITATION.cff and CHANGELOG.md name the package's version; the citation is the paper."""
    from fianet_mmseg.version import __version__

    cff = yaml.safe_load((REPO / 'CITATION.cff').read_text(encoding='utf-8'))
    assert cff['cff-version'] == '1.2.0'
    assert cff['version'] == __version__
    assert cff['license'] == _pyproject()['project']['license']
    paper = cff['preferred-citation']
    assert [a['family-names'] for a in paper['authors']] == [
        'Lei', 'Xiao', 'Zhang', 'Li', 'Shi', 'Zhu']
    assert paper['journal'] == 'IEEE Transactions on Geoscience and Remote Sensing'
    assert paper['year'] == 2024 and paper['url'] == PAPER_URL
    changelog = (REPO / 'CHANGELOG.md').read_text(encoding='utf-8')
    assert re.search(rf'^## \[{re.escape(__version__)}\]', changelog, re.M)
    assert re.search(r'^## \[Unreleased\]', changelog, re.M)


def _search_listing(out: str) -> dict:
    """Parse ``mim search``'s listing: config id -> {field: text}."""
    out = re.sub(r'\x1b\[[0-9;]*m', '', out)  # colour codes, if any
    listing, fields = {}, None
    for line in out.splitlines():
        if line.startswith('config id: '):
            fields = listing.setdefault(line.removeprefix('config id: ').strip(), {})
        elif fields is not None and line.strip() and not set(line) <= {'-'}:
            key, _, value = line.partition(' ')
            fields[key] = value.strip()
    return listing


@pytest.mark.slow
def test_mim_search_after_pip_install(installed_venv, tmp_path):
    """`mim search fianet_mmseg` in a clean venv holding the wheel lists both configs with the
    paper's numbers."""
    out = installed_venv.run(installed_venv.mim + ['search', 'fianet_mmseg'], cwd=tmp_path)
    listing = _search_listing(out)
    assert set(listing) == set(PAPER), out
    for name, (dataset, metrics) in PAPER.items():
        fields = listing[name]
        for metric, value in metrics.items():
            assert float(fields[f'{dataset.lower()}/{metric.lower()}']) == value, (name, metric)
        assert fields['config'] == f'configs/{name}.py'
        assert fields['paper'] == PAPER_URL
        assert fields['training_data'] == dataset.lower()
        # shown in full at mim's default width, lower-cased as mim shows every text field
        assert fields['converter'] == 'tools/model_converters/fianet_official_to_mmseg.py src dst'


@pytest.mark.slow
def test_wheel_ships_the_license(installed_venv, tmp_path):
    code = ('from importlib.metadata import distribution; d = distribution("fianet-mmseg"); '
            'print(d.metadata["License-Expression"]); '
            'print(*[d.locate_file(f) for f in d.files if f.name == "LICENSE"])')
    expression, path = installed_venv.run([installed_venv.python, '-c', code],
                                          cwd=tmp_path).split()
    assert expression == 'Apache-2.0'
    assert path.startswith(str(installed_venv.site))
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == APACHE_2_SHA256
