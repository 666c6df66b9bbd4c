#!/usr/bin/env python3
"""Build and cache the local Debian systemd images that lab and test containers use.

No registry is needed or used: a base image is made with debootstrap and
``docker import``; the prepared image adds the common role's packages to it with
``docker run`` + ``docker commit``. Each image carries the hash of its recipe in a
label and is rebuilt only when that hash changes.

Usage: images.py ensure [--suite trixie] [--force]
       images.py names
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
RECIPE = REPO_ROOT / "files" / "images" / "recipe.yml"
LABEL = "org.jhub-lab.recipe"
BASE_REPO = "jhub-lab/debian-systemd"
PREPARED_REPO = "jhub-lab/debian-prepared"
SYSTEMD_CHANGES = [
    'CMD ["/lib/systemd/systemd"]',
    "ENV container=docker",
]
# The package index stays in the image: apt's cache_valid_time then decides whether a
# converge refreshes it (an image older than that refreshes on first use).
PREPARE_SCRIPT = (
    "set -e; export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; "
    "apt-get install -y -qq --no-install-recommends {packages} >/dev/null; apt-get clean"
)
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


def log(message: str) -> None:
    print(f"images: {message}", file=sys.stderr, flush=True)


def load_recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text())


def prepared_packages(recipe: dict) -> list[str]:
    defaults = yaml.safe_load((REPO_ROOT / recipe["prepared_from_role_defaults"]).read_text())
    return sorted(defaults[recipe["prepared_packages_variable"]])


def digest(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def image_label(name: str) -> str | None:
    result = subprocess.run(
        ["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', name],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def sources_list(recipe: dict, suite: str) -> str:
    return (
        f"Types: deb\nURIs: {recipe['mirror']}\nSuites: {suite} {suite}-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        f"Types: deb\nURIs: {recipe['security_mirror']}\nSuites: {recipe['suites'][suite]}\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def build_base(recipe: dict, suite: str, name: str, recipe_hash: str) -> None:
    log(f"building {name} with debootstrap (about a minute)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"jhub-rootfs-{suite}-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(recipe['base_packages'])}",
                suite,
                str(rootfs),
                recipe["mirror"],
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        (rootfs / "etc/apt/sources.list").unlink(missing_ok=True)
        (rootfs / "etc/apt/sources.list.d/debian.sources").write_text(sources_list(recipe, suite))
        (rootfs / "etc/machine-id").write_text("")
        for unit in recipe.get("masked_units", []):
            (rootfs / "etc/systemd/system" / unit).symlink_to("/dev/null")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        changes = [*SYSTEMD_CHANGES, f"LABEL {LABEL}={recipe_hash}"]
        cmd = ["docker", "import"]
        for change in changes:
            cmd += ["--change", change]
        subprocess.run([*cmd, "-", name], stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise SystemExit(f"images: tar of {rootfs} failed")
    log(f"built {name} in {time.monotonic() - started:.0f} s")


def build_prepared(base: str, packages: list[str], name: str, recipe_hash: str) -> None:
    log(f"building {name}: {len(packages)} packages of the common role")
    started = time.monotonic()
    container = f"jhub-image-build-{os.getpid()}"
    env_args: list[str] = []
    for var in PROXY_VARS:
        if os.environ.get(var):
            env_args += ["-e", f"{var}={os.environ[var]}"]
    script = PREPARE_SCRIPT.format(packages=" ".join(packages))
    try:
        subprocess.run(
            ["docker", "run", "--name", container, *env_args, base, "sh", "-c", script],
            check=True,
        )
        cmd = ["docker", "commit"]
        for change in [*SYSTEMD_CHANGES, f"LABEL {LABEL}={recipe_hash}"]:
            cmd += ["--change", change]
        subprocess.run([*cmd, container, name], check=True, stdout=subprocess.DEVNULL)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    log(f"built {name} in {time.monotonic() - started:.0f} s")


def ensure(suites: list[str], force: bool) -> None:
    recipe = load_recipe()
    packages = prepared_packages(recipe)
    for suite in suites:
        if suite not in recipe["suites"]:
            raise SystemExit(f"images: unknown suite {suite!r}; known: {sorted(recipe['suites'])}")
        base, prepared = f"{BASE_REPO}:{suite}", f"{PREPARED_REPO}:{suite}"
        base_hash = digest(recipe, suite)
        if force or image_label(base) != base_hash:
            build_base(recipe, suite, base, base_hash)
        else:
            log(f"{base} is current")
        prepared_hash = digest(base_hash, packages, PREPARE_SCRIPT)
        if force or image_label(prepared) != prepared_hash:
            build_prepared(base, packages, prepared, prepared_hash)
        else:
            log(f"{prepared} is current")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ens = sub.add_parser("ensure", help="build missing or outdated images")
    ens.add_argument("--suite", action="append", help="only this suite (repeatable)")
    ens.add_argument("--force", action="store_true", help="rebuild even if current")
    sub.add_parser("names", help="print the image names")
    args = parser.parse_args(argv)
    suites = sorted(load_recipe()["suites"], reverse=True)
    if args.command == "names":
        for suite in suites:
            print(f"{BASE_REPO}:{suite}\n{PREPARED_REPO}:{suite}")
        return 0
    ensure(args.suite or suites, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
