"""frequencies.txt: a template trip becomes one run per departure, exact_times 0 and 1, and realtime finds them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from services.mobility.domain.gtfs import Frequency, GtfsError, expand_frequencies, load_feed, load_feeds

BERKANE = Path(__file__).resolve().parents[3] / "services" / "mobility" / "data" / "gtfs" / "berkane"


def _feed_with(tmp_path: Path, frequencies: str) -> Path:
    folder = tmp_path / "berkane"
    shutil.copytree(BERKANE, folder)
    (folder / "frequencies.txt").write_text(frequencies, encoding="utf-8")
    return folder


def test_exact_times_runs_leave_every_headway_before_end_time_and_keep_the_time_between_stops(tmp_path: Path) -> None:
    folder = _feed_with(tmp_path, "trip_id,start_time,end_time,headway_secs,exact_times\n"
                                  "1-0400,08:00:00,10:00:00,1800,1\n"
                                  "1-0400,23:30:00,25:00:00,3600,1\n")
    feed = load_feed(folder)
    template = feed.templates["1-0400"]
    assert "1-0400" not in feed.trips
    runs = sorted((t for t in feed.trips.values() if t.template_trip_id == "1-0400"), key=lambda t: t.start_s)
    assert [r.trip_id for r in runs] == ["1-0400@08:00:00", "1-0400@08:30:00", "1-0400@09:00:00",
                                         "1-0400@09:30:00", "1-0400@23:30:00", "1-0400@24:30:00"]
    durations = {tuple(s.arrival_s - r.start_s for s in r.stop_times) for r in runs}
    assert durations == {tuple(s.arrival_s - template.start_s for s in template.stop_times)}
    assert {(r.headway_s, r.exact_times) for r in runs} == {(1800, True), (3600, True)}
    assert all(r.route_id == "BK-1" and r.service_id == template.service_id for r in runs)


def test_frequency_based_runs_are_nominal_departures_marked_not_exact(tmp_path: Path) -> None:
    folder = _feed_with(tmp_path, "trip_id,start_time,end_time,headway_secs\n1-0400,06:00:00,06:40:00,600\n")
    runs = [t for t in load_feed(folder).trips.values() if t.template_trip_id == "1-0400"]
    assert sorted(r.stop_times[0].departure_s for r in runs) == [21600, 22200, 22800, 23400]
    assert {r.exact_times for r in runs} == {False}


def test_expansion_is_pure_and_empty_windows_give_no_run() -> None:
    feed = load_feed(BERKANE)
    template = feed.trips["1-0400"]
    assert expand_frequencies(template, ()) == ()
    one = expand_frequencies(template, (Frequency("1-0400", 3600, 3601, 600, True),))
    assert [r.start_s for r in one] == [3600]


def test_realtime_names_a_run_by_template_and_start_time(tmp_path: Path) -> None:
    folder = _feed_with(tmp_path, "trip_id,start_time,end_time,headway_secs,exact_times\n"
                                  "1-0400,08:00:00,09:00:00,900,1\n")
    schedule = load_feeds([folder])
    assert schedule.run_id("1-0400", "08:15:00") == "1-0400@08:15:00"
    assert schedule.run_id("1-0430", "04:30:00") == "1-0430"  # an ordinary trip is itself
    assert schedule.run_id("1-0400", None) == "1-0400"


def test_overlapping_windows_of_one_trip_are_refused_with_file_and_field(tmp_path: Path) -> None:
    folder = _feed_with(tmp_path, "trip_id,start_time,end_time,headway_secs,exact_times\n"
                                  "1-0400,08:00:00,10:00:00,600,1\n1-0400,09:00:00,11:00:00,600,1\n")
    with pytest.raises(GtfsError, match=r"frequencies.txt: start_time: trip '1-0400': window from 09:00:00"):
        load_feed(folder)
