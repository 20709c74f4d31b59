"""The locked dependency set, and the service installed as a product.

`make install` must install exactly `requirements/test.txt` (this venv is checked against it), the two
locks must agree with each other and with pyproject.toml, and a non-editable install into a fresh venv must
start with `infoscreen-monitor serve` from `/`, migrations included.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import distributions
from pathlib import Path

import httpx
import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
TEST_LOCK = ROOT / "requirements" / "test.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
STARTUP_DEADLINE_SECONDS = 30


@dataclass
class Pin:
    version: str
    marker: str | None
    hashes: set[str] = field(default_factory=set)


def read_lock(path: Path) -> dict[str, Pin]:
    """`name==version ; marker` lines, each followed by its `--hash=` lines, by canonical name.

    A universal lock may pin one package once per Python version (numpy); the pin for this interpreter wins.
    """
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip().removesuffix("\\").strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--hash="):
            assert current is not None, f"{path.name}: a hash before any requirement"
            current.hashes.add(line.removeprefix("--hash="))
            continue
        requirement = Requirement(line)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{path.name}: {line} is not pinned with =="
        current = Pin(specifier.version, str(requirement.marker) if requirement.marker else None)
        name = canonicalize_name(requirement.name)
        if name not in pins or applies_here(current):
            pins[name] = current
    return pins


def applies_here(pin: Pin) -> bool:
    return pin.marker is None or Marker(pin.marker).evaluate()


def installed() -> dict[str, str]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in distributions()
        if canonicalize_name(dist.metadata["Name"]) != PROJECT
    }


class TestLock:
    def test_this_venv_holds_exactly_the_test_lock(self) -> None:
        expected = {name: pin.version for name, pin in read_lock(TEST_LOCK).items() if applies_here(pin)}
        actual = installed()
        missing = {name: version for name, version in expected.items() if actual.get(name) != version}
        extra = {name: version for name, version in actual.items() if name not in expected}
        assert not missing, f"not installed at the locked version (run `make install`): {missing}, found {actual}"
        assert not extra, f"installed but not in {TEST_LOCK.name} (run `make install` or `make lock`): {extra}"

    def test_every_pin_has_hashes(self) -> None:
        for path in (TEST_LOCK, RUNTIME_LOCK):
            unhashed = [name for name, pin in read_lock(path).items() if not pin.hashes]
            assert not unhashed, f"{path.name}: no hash for {unhashed}"

    def test_runtime_lock_is_the_test_locks_versions_and_hashes(self) -> None:
        test, runtime = read_lock(TEST_LOCK), read_lock(RUNTIME_LOCK)
        differing = {name: pin.version for name, pin in runtime.items() if test.get(name) != pin}
        assert not differing, f"{RUNTIME_LOCK.name} differs from {TEST_LOCK.name} (run `make lock`): {differing}"

    @pytest.mark.parametrize(
        ("lock", "requirements"),
        [
            (RUNTIME_LOCK, PYPROJECT["project"]["dependencies"]),
            (TEST_LOCK, PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["test"]),
            (RUNTIME_LOCK, PYPROJECT["build-system"]["requires"]),
        ],
        ids=["dependencies", "test-extra", "build-system"],
    )
    def test_lock_satisfies_pyproject(self, lock: Path, requirements: list[str]) -> None:
        pins = read_lock(lock)
        for text in requirements:
            requirement = Requirement(text)
            pin = pins.get(canonicalize_name(requirement.name))
            assert pin is not None, f"{text} (pyproject.toml) is not in {lock.name}: run `make lock`"
            assert requirement.specifier.contains(pin.version, prereleases=True), (
                f"{lock.name} pins {requirement.name}=={pin.version}, outside pyproject.toml's {text}: run `make lock`"
            )


class TestDockerImage:
    def test_locked_dependencies_are_installed_before_the_code_is_copied(self) -> None:
        lines = (ROOT / "Dockerfile").read_text().splitlines()
        locked = next(i for i, line in enumerate(lines) if "--require-hashes" in line and "runtime.txt" in line)
        code = next(i for i, line in enumerate(lines) if line.startswith("COPY app"))
        project = next(i for i, line in enumerate(lines) if "pip install --no-deps" in line)
        assert locked < code < project
        assert lines[-1] == 'CMD ["infoscreen-monitor", "serve"]'

    def test_build_context_leaves_out_local_state(self) -> None:
        ignored = set((ROOT / ".dockerignore").read_text().split())
        wanted = {".git", ".venv", "data", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis"}
        wanted |= {"**/__pycache__", "bench/results", "bench/.peer", "bench/.work"}
        assert wanted <= ignored, f".dockerignore misses {wanted - ignored}"


def run(*args: str | Path, cwd: Path = ROOT) -> None:
    result = subprocess.run([str(arg) for arg in args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{args}: {result.stderr}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel built from a copy of the sources, and a fresh venv it is installed into (not editable).

    The fresh venv gets the project alone; its dependencies are this venv's (the locked set), made visible
    by a .pth line, so the test needs no network. A .pth line only adds a directory: this venv's editable
    hook for the project (its own .pth) is not run, and the fresh venv's own site-packages comes first.
    """
    work = tmp_path_factory.mktemp("product")
    source = work / "source"
    shutil.copytree(ROOT / "app", source / "app", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet")
    run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", work / "dist", source)
    (wheel,) = (work / "dist").glob("*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    run(*pip, "--python", venv / "bin" / "python", "install", "--no-deps", "--no-index", wheel)
    (site_packages,) = venv.glob("lib/python*/site-packages")
    (site_packages / "locked-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return wheel, venv


def product_env(data_dir: Path, **values: str) -> dict[str, str]:
    keep = {name: value for name, value in os.environ.items() if name in ("PATH", "LANG", "LC_ALL", "TMPDIR")}
    return {
        **keep,
        "HOME": str(data_dir),
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite+aiosqlite:///{data_dir}/monitor.db",
        "MQTT_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **values,
    }


class TestInstalledProduct:
    def test_wheel_carries_the_migrations(self, product: tuple[Path, Path]) -> None:
        wheel, _ = product
        names = set(zipfile.ZipFile(wheel).namelist())
        shipped = {Path(name).name for name in names if name.startswith("app/migrations/")}
        expected = {"env.py", "script.py.mako"} | {
            path.name for path in (ROOT / "app/migrations/versions").glob("*.py")
        }
        assert expected <= shipped, f"missing from the wheel: {expected - shipped}"
        assert any(re.match(r"infoscreen_monitor-[^/]+\.dist-info/entry_points\.txt$", name) for name in names)

    def test_wheel_carries_the_pages_and_their_assets(self, product: tuple[Path, Path]) -> None:
        wheel, _ = product
        names = set(zipfile.ZipFile(wheel).namelist())
        expected = {
            f"app/{path.relative_to(ROOT / 'app').as_posix()}"
            for folder in ("templates", "static")
            for path in (ROOT / "app" / folder).rglob("*")
            if path.is_file()
        }
        assert "app/static/vendor/swagger-ui-dist/swagger-ui-bundle.js" in expected
        assert expected <= names, f"missing from the wheel: {expected - names}"

    def test_package_is_imported_from_the_fresh_venv(self, product: tuple[Path, Path], tmp_path: Path) -> None:
        _, venv = product
        result = subprocess.run(
            [venv / "bin" / "python", "-c", "import app.db; print(app.db.MIGRATIONS_DIR)"],
            cwd="/",
            env=product_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert Path(result.stdout.strip()).is_relative_to(venv), result.stdout

    def test_console_script_serves_from_root_with_migrations_applied(
        self, product: tuple[Path, Path], tmp_path: Path
    ) -> None:
        _, venv = product
        port = free_port()
        log = tmp_path / "server.log"
        with log.open("w") as stderr:  # the child keeps its own copy
            server = subprocess.Popen(
                [venv / "bin" / "infoscreen-monitor", "serve"],
                cwd="/",
                env=product_env(tmp_path, HOST="127.0.0.1", PORT=str(port)),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
            ready: httpx.Response | None = None
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    ready = httpx.get(f"{base}/readyz", timeout=2)
                except httpx.TransportError:
                    ready = None
                if ready is not None and ready.status_code == 200:
                    break
                time.sleep(0.1)
            assert server.poll() is None, f"the service exited: {log.read_text()}"
            assert ready is not None, f"no answer on {base} within {STARTUP_DEADLINE_SECONDS} s"
            assert ready.status_code == 200, ready.text
            assert ready.json() == {"database": "ok", "mqtt": "disabled"}
            secret = (tmp_path / "initial-superadmin-token").read_text().strip()
            # Both read tables that only the migrations create.
            logs = httpx.get(f"{base}/api/client-logs/test", headers={"Authorization": f"Bearer {secret}"})
            assert logs.status_code == 200, logs.text
            tokens = httpx.get(f"{base}/api/tokens", headers={"Authorization": f"Bearer {secret}"})
            assert tokens.status_code == 200, tokens.text
            assert [token["role"] for token in tokens.json()["tokens"]] == ["superadmin"]
            # The pages and their assets come from inside the installed package.
            for page in ("/login", "/docs", "/redoc", "/static/dashboard/dashboard.js"):
                assert httpx.get(f"{base}{page}").status_code == 200, page
        finally:
            server.terminate()
            server.wait(timeout=15)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.returncode in (0, -signal.SIGTERM), log.read_text()

    def test_console_script_runs_the_other_commands(self, product: tuple[Path, Path], tmp_path: Path) -> None:
        _, venv = product
        result = subprocess.run(
            [venv / "bin" / "infoscreen-monitor", "tokens", "create", "--name", "lobby", "--role", "device"],
            cwd="/",
            env=product_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "created token" in result.stdout
