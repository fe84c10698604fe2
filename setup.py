# Copyright (c) mmrsrefseg contributors. All rights reserved.
"""Packaging for mmrsrefseg, following mmsegmentation's ``setup.py``."""
import os.path as osp
import re
from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    version_file = 'mmrsrefseg/version.py'
    with open(version_file, encoding='utf-8') as f:
        exec(compile(f.read(), version_file, 'exec'))
    return locals()['__version__']


def parse_requirements(fname='requirements.txt', with_version=True):
    """Parse the package dependencies listed in a requirements file.

    Follows ``-r`` lines recursively, like mmsegmentation's ``setup.py``.

    Args:
        fname (str): Path to the requirements file.
        with_version (bool): Keep version specifiers. Defaults to True.

    Returns:
        list[str]: Requirement strings.
    """
    require_fpath = fname

    def parse_line(line):
        if line.startswith('-r '):
            target = osp.join(osp.dirname(fname), line.split(' ')[1])
            yield from parse_require_file(target)
            return
        info = dict(line=line)
        if line.startswith('-e '):
            info['package'] = line.split('#egg=')[1]
            yield info
            return
        pat = '(' + '|'.join(['>=', '==', '>', '<=', '<', '!=', '~=']) + ')'
        parts = re.split(pat, line, maxsplit=1)
        parts = [p.strip() for p in parts]
        info['package'] = parts[0]
        if len(parts) > 1:
            op, rest = parts[1:]
            version = rest.split(';')[0].strip()
            info['version'] = (op, version)
        yield info

    def parse_require_file(fpath):
        with open(fpath, encoding='utf-8') as f:
            for line in f.readlines():
                line = line.strip()
                if line and not line.startswith('#'):
                    yield from parse_line(line)

    def gen_packages_items():
        if not osp.exists(require_fpath):
            return
        for info in parse_require_file(require_fpath):
            parts = [info['package']]
            if with_version and 'version' in info:
                parts.extend(info['version'])
            yield ''.join(parts)

    return list(gen_packages_items())


if __name__ == '__main__':
    setup(
        name='mmrsrefseg',
        version=get_version(),
        description='RSRefSeg: referring remote sensing image segmentation '
        'as an OpenMMLab (mmsegmentation) plugin',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='referring segmentation, remote sensing, RRSIS, CLIP, SAM',
        packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
        include_package_data=True,
        classifiers=[
            'License :: OSI Approved :: Apache Software License',
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
        ],
        license='Apache License 2.0',
        python_requires='>=3.8',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'all': parse_requirements('requirements.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'optional': parse_requirements('requirements/optional.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
        },
        zip_safe=False)
