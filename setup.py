"""Package discovery only; all metadata lives in pyproject.toml.

`kernels/` and `references/` are top-level folders in the repository but install as
`swiglu_check.kernels` and `swiglu_check.references` (a top-level `kernels` package
would clash with an unrelated PyPI package). setuptools cannot express "find the
subpackages of a remapped folder" in pyproject.toml alone, so we list them here.
"""
from setuptools import find_packages, setup

REMAPPED = {"swiglu_check.kernels": "kernels", "swiglu_check.references": "references"}

packages = find_packages(include=["swiglu_check", "swiglu_check.*"])
package_dir = {"swiglu_check": "swiglu_check"}
for name, folder in REMAPPED.items():
    package_dir[name] = folder
    packages.append(name)
    packages += [f"{name}.{sub}" for sub in find_packages(where=folder)]

setup(packages=packages, package_dir=package_dir)
