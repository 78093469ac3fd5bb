"""The sample GTFS feeds pass MobilityData's canonical GTFS Schedule validator with no errors.

The validator's jars come from Maven Central (``tools/gtfs-validator/pom.xml``) into the same
cache as Apache Kafka's (``$MADINA_CACHE_DIR`` or ``~/.cache/madina``), once; Maven Central has
no command-line jar, so ``tools/gtfs-validator/RunValidator.java`` (run by the JDK's source
launcher) calls its ValidationRunner. Skips, saying why, without Java, Maven or the artifacts.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from madina.devservers.apache_kafka import cache_dir

REPO = Path(__file__).resolve().parents[3]
POM = REPO / "tools" / "gtfs-validator" / "pom.xml"
RUNNER = REPO / "tools" / "gtfs-validator" / "RunValidator.java"
FEEDS = REPO / "services" / "mobility" / "data" / "gtfs"


def _version() -> str:
    match = re.search(r"<gtfs-validator.version>([^<]+)</gtfs-validator.version>", POM.read_text())
    assert match, f"{POM} names no <gtfs-validator.version>"
    return match.group(1)


@pytest.fixture(scope="module")
def validator_libs() -> Path:
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            pytest.skip(f"the GTFS validator needs `{tool}` on PATH (OpenJDK 17 and Maven)")
    libs = cache_dir() / f"gtfs-validator-{_version()}" / "libs"
    complete = libs.parent / ".complete"
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not complete.exists():
            shutil.rmtree(libs, ignore_errors=True)
            argv = [
                "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
            ]  # fmt: skip
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
            except subprocess.TimeoutExpired:
                pytest.skip("Maven did not fetch the GTFS validator within 900 s")
            if result.returncode != 0 or not any(libs.glob("gtfs-validator-main-*.jar")):
                tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
                pytest.skip(f"Maven could not fetch the GTFS validator: {tail}")
            complete.write_text(_version())
    return libs


@pytest.fixture(scope="module")
def validator_command(validator_libs: Path, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """``java`` running RunValidator, compiled once for both feeds (the source launcher compiles
    it again on every run); the source launcher where there is no ``javac``."""
    if shutil.which("javac") is None:
        return ["java", "-cp", f"{validator_libs}/*", str(RUNNER)]
    classes = tmp_path_factory.mktemp("gtfs-validator-classes")
    argv = ["javac", "-cp", f"{validator_libs}/*", "-d", str(classes), str(RUNNER)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return ["java", "-cp", f"{validator_libs}/*:{classes}", RUNNER.stem]


@pytest.mark.parametrize("feed", ["berkane", "casablanca"])
def test_sample_feed_has_no_validator_errors(feed: str, validator_command: list[str], tmp_path: Path) -> None:
    argv = [*validator_command, str(FEEDS / feed), str(tmp_path)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report_path = tmp_path / "report.json"
    assert report_path.exists(), (result.stdout + result.stderr)[-3000:]
    report = json.loads(report_path.read_text())
    errors = [notice for notice in report["notices"] if notice["severity"] == "ERROR"]
    assert errors == [], json.dumps(errors, indent=1)[:4000]
    system_errors = tmp_path / "system_errors.json"
    if system_errors.exists():
        assert json.loads(system_errors.read_text()).get("notices", []) == []
    warnings = sorted(n["code"] for n in report["notices"] if n["severity"] == "WARNING")
    assert warnings == [], f"validator warnings: {warnings}"
