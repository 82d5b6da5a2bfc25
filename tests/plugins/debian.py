"""Debian packages some tests need (softhsm2, prometheus, docker-compose): installed with
apt-get when missing and this runs as root, once per run; otherwise those tests skip and
say why. Never a silent dependency of the default suite."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from functools import cache

import pytest

APT_TIMEOUT_SECONDS = 180


@cache
def _apt_updated() -> bool:
    done = subprocess.run(["apt-get", "update", "-qq"], capture_output=True,
                          timeout=APT_TIMEOUT_SECONDS, check=False)
    return done.returncode == 0


def _apt_install(package: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
    try:
        if subprocess.run(command, env=env, capture_output=True,
                          timeout=APT_TIMEOUT_SECONDS, check=False).returncode == 0:
            return True
        return _apt_updated() and subprocess.run(
            command, env=env, capture_output=True, timeout=APT_TIMEOUT_SECONDS, check=False
        ).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@cache
def missing(package: str, present: Callable[[], bool]) -> str | None:
    """Why `package` is not there and could not be installed, or None once it is."""
    if present():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{package} is not installed, and cannot be here (needs root and apt-get)"
    if not _apt_install(package) or not present():
        return f"{package} is not installed, and apt-get could not install it"
    return None


def binary_or_skip(package: str, name: str, otherwise: str) -> str:
    """The path of `name`, installing `package` for it when missing; where that cannot
    be, the test skips, printing why and what is `otherwise` checked."""
    why = missing(package, lambda: shutil.which(name) is not None)
    found = shutil.which(name)
    if why is not None or found is None:
        reason = f"{why or package + ' has no ' + name}: {otherwise}"
        print(f"\nskipped: {reason}")
        pytest.skip(reason)
    return found
