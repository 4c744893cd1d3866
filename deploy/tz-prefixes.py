#!/usr/bin/env python3
"""libphonenumber's prefix-to-time-zone map, from the Python `phonenumbers`
package (its tzdata module is generated from libphonenumber's
resources/timezones/map_data.txt), written in that file's own format:

    # phonenumbers 9.0.43
    1212|America/New_York
    44|Europe/Guernsey&Europe/Isle_of_Man&Europe/Jersey&Europe/London

`batchcall tz-load --file FILE` loads it into tz_prefixes (docs/operations.md).
Prefixes are E.164 digits without '+'. libphonenumber's "Etc/Unknown" is left
out: a number with no known zone falls back to a shorter prefix, else to its
batch's time zone (sql/0023_legal_hours.sql)."""
import sys

import phonenumbers
from phonenumbers.tzdata import TIMEZONE_DATA

UNKNOWN = "Etc/Unknown"


def main():
    out = sys.stdout
    out.write(f"# phonenumbers {phonenumbers.__version__}\n")
    for prefix in sorted(TIMEZONE_DATA):
        zones = sorted(z for z in TIMEZONE_DATA[prefix] if z != UNKNOWN)
        if zones:
            out.write(f"{prefix}|{'&'.join(zones)}\n")


if __name__ == "__main__":
    main()
