"""The README's install section, run as written (in a clean virtual environment, with its
paths moved into a temporary directory so that the machine is left as it was): the wheel
builds, `failover --version` answers from the installed copy, the config schema ships in
the wheel (`failover schema`), `init` and `validate` work. Needs network access to the
package index (CI has it) and Debian's python3 with venv."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from failover import __version__
from tests.support import require

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]


def install_section() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the README's Install section has a sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_install_section_works_in_a_clean_venv(tmp_path: Path) -> None:
    python3 = shutil.which("python3", path="/usr/bin:/bin")
    require(python3 is not None, "no /usr/bin/python3")
    lines = install_section()
    apt = [line for line in lines if line.startswith("apt-get install")]
    assert len(apt) == 1
    packages = apt[0].split("#")[0].split()[2:]
    missing = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}\n", *packages], capture_output=True, text=True
    )
    require(
        missing.returncode == 0 and missing.stdout.count("install ok installed") == len(packages),
        f"the README's apt packages are not all installed: {packages} (tests/setup.sh installs them)",
    )
    moved = {
        "/opt/failover": str(tmp_path / "opt" / "failover"),
        "/usr/local/bin": str(tmp_path / "bin"),
        "/etc/failover": str(tmp_path / "etc" / "failover"),
    }
    (tmp_path / "bin").mkdir()
    script = "\n".join(line for line in lines if not line.startswith("apt-get"))
    for old, new in moved.items():
        script = script.replace(old, new)
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exe = tmp_path / "bin" / "failover"
    assert exe.is_symlink()
    version = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert version.returncode == 0 and version.stdout.strip() == f"failover {__version__}"
    where = subprocess.run(
        [str(tmp_path / "opt" / "failover" / "bin" / "python"), "-c", "import failover; print(failover.__file__)"],
        capture_output=True, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert where.stdout.startswith(str(tmp_path / "opt" / "failover")), (
        where.stdout
    )  # the wheel's copy
    schema = subprocess.run(
        [str(exe), "schema"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert schema.returncode == 0
    assert schema.stdout == (REPO / "configs" / "failover.schema.json").read_text()
    config = tmp_path / "etc" / "failover" / "failover.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert "valid (1 site(s)" in proc.stdout
