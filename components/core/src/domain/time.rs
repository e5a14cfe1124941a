//! Instants. On the wire: RFC 3339 with an offset. Stored: UTC in one fixed-width form
//! (`2026-03-01T04:30:00.000000Z`) so that text order is time order and range queries can
//! use an index on the column.

use chrono::{DateTime, Datelike, SecondsFormat, Utc};

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    pub fn from_utc(instant: DateTime<Utc>) -> Timestamp {
        // Microseconds are what we store; truncating here keeps a value equal to its round trip.
        let micros = instant.timestamp_micros();
        Timestamp(DateTime::from_timestamp_micros(micros).unwrap_or(instant))
    }

    /// Parses an RFC 3339 instant from a client. The offset is required (`Z` or `+05:30`):
    /// a local time without one names no instant, so it is a 422 naming `field`.
    pub fn parse(field: &str, value: &str) -> Result<Timestamp, Error> {
        // Years 0001–9999 in UTC only: the stored form has four year digits, and an offset can
        // push 0000-01-01T00:00+01:00 or 9999-12-31T23:00-05:00 outside them.
        let in_range = |instant: &DateTime<Utc>| (1..=9999).contains(&instant.year());
        DateTime::parse_from_rfc3339(value)
            .map(|instant| Timestamp::from_utc(instant.with_timezone(&Utc)))
            .ok()
            .filter(|t| in_range(&t.0))
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    "must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T10:00:00+05:30",
                )
            })
    }

    /// Reads the stored form back (any RFC 3339 we wrote).
    pub fn from_stored(value: &str) -> Result<Timestamp, Error> {
        DateTime::parse_from_rfc3339(value)
            .map(|instant| Timestamp(instant.with_timezone(&Utc)))
            .map_err(|_| Error::storage(format!("unreadable stored timestamp {value:?}")))
    }

    /// The stored and wire form: UTC, microseconds, `Z`.
    pub fn to_stored(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_honoured() {
        let t = Timestamp::parse("at", "2026-03-01T10:00:00+05:30").unwrap();
        assert_eq!(t.to_stored(), "2026-03-01T04:30:00.000000Z");
    }

    #[test]
    fn a_time_without_offset_or_outside_years_1_to_9999_is_refused() {
        for bad in [
            "2026-03-01T10:00:00",
            "2026-03-01",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "",
            // Regressions found by schemathesis: outside years 0001–9999 once in UTC.
            "0000-01-01T00:00:00+01:00",
            "0000-06-01T00:00:00Z",
            "9999-12-31T20:00:00-05:00",
        ] {
            assert!(Timestamp::parse("at", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_and_last_storable_instants_are_accepted() {
        assert!(Timestamp::parse("at", "0001-01-01T00:00:00Z").is_ok());
        assert!(Timestamp::parse("at", "9999-12-31T23:59:59.999999Z").is_ok());
    }

    #[test]
    fn stored_form_sorts_as_time() {
        let a = Timestamp::parse("at", "2026-03-01T09:59:59.999999Z")
            .unwrap()
            .to_stored();
        let b = Timestamp::parse("at", "2026-03-01T10:00:00Z")
            .unwrap()
            .to_stored();
        assert!(a < b);
        assert_eq!(a.len(), b.len());
    }
}
