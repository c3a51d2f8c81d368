#!/usr/bin/env python3
"""Validate Kubernetes manifests against the Kubernetes object schema (strict: unknown fields fail).

    python3 tools/k8s-validate.py [--kubernetes-version V ...] FILE_OR_DIR ...

Every YAML document in the files (directories: their *.yaml, *.yml, recursively) is checked with
kubernetes-validate (JSON schemas of the Kubernetes API, bundled in the package; no cluster, no
network). Unlike the package's own command line, a kind without a schema is a failure, not a
warning. Prints one line per object and exits 0 if all pass, 1 if any fails, 3 if the package is
missing (install: python3 -m pip install 'kubernetes-validate==1.37.0', as .ci/run does).
"""
import argparse
import os
import sys

PACKAGE = "kubernetes-validate==1.37.0"

try:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, VersionNotSupportedError
    import yaml
except ImportError as missing:  # pragma: no cover - the message is the point
    sys.stderr.write(f"k8s-validate: {missing}: install the schema checker with "
                     f"`python3 -m pip install '{PACKAGE}'` (bash .ci/run does it)\n")
    sys.exit(3)


def files_of(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, _, names in sorted(os.walk(path)):
                for name in sorted(names):
                    if name.endswith((".yaml", ".yml")):
                        yield os.path.join(root, name)
        else:
            yield path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-version", action="append", dest="versions",
                        help="Kubernetes version(s) to validate against (default: 1.30.0 and the newest bundled)")
    parser.add_argument("paths", nargs="+")
    arguments = parser.parse_args()
    versions = arguments.versions or ["1.30.0", kubernetes_validate.utils.latest_version()]

    failures = 0
    objects = 0
    for filename in files_of(arguments.paths):
        try:
            with open(filename) as handle:
                documents = [document for document in yaml.safe_load_all(handle) if document]
        except (OSError, yaml.YAMLError) as error:
            print(f"FAIL {filename}: cannot read YAML: {error}")
            failures += 1
            continue
        if not documents:
            print(f"FAIL {filename}: no objects")
            failures += 1
        for document in documents:
            objects += 1
            name = f"{document.get('kind', '?')}/{(document.get('metadata') or {}).get('name', '?')}"
            for version in versions:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except ValidationError as error:
                    path = ".".join(str(item) for item in error.path)
                    print(f"FAIL {filename}: {name} (Kubernetes {version}): {path}: {error.message}")
                    failures += 1
                except (SchemaNotFoundError, VersionNotSupportedError) as error:
                    print(f"FAIL {filename}: {name} (Kubernetes {version}): {error.message}")
                    failures += 1
                except Exception as error:  # a malformed object (no kind, no apiVersion) is a failure too
                    print(f"FAIL {filename}: {name} (Kubernetes {version}): {type(error).__name__}: {error}")
                    failures += 1
                else:
                    print(f"ok   {filename}: {name} (Kubernetes {version})")
    print(f"{objects} objects, {failures} failures, Kubernetes {', '.join(versions)} (strict), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else '?'}")
    return 1 if failures or objects == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
