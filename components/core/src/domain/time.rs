//! Instants. On the wire: RFC 3339 with an offset, rendered in one fixed-width UTC form
//! (`2026-03-01T04:30:00.000000Z`). Stored: integer microseconds since the Unix epoch, UTC
//! (migration 0007): 8 bytes instead of 27, ordered as time, and a duration is a subtraction.

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

    /// The last microsecond RFC 3339 can write (9999-12-31T23:59:59.999999Z): an open end.
    pub(crate) fn last() -> Timestamp {
        const LAST_MICROS: i64 = 253_402_300_799_999_999;
        Timestamp::from_micros(LAST_MICROS).unwrap_or(Timestamp(DateTime::<Utc>::MAX_UTC))
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

    /// Reads back an RFC 3339 instant we rendered (a cursor, a schema-6 row).
    pub fn from_rfc3339(value: &str) -> Result<Timestamp, Error> {
        DateTime::parse_from_rfc3339(value)
            .map(|instant| Timestamp(instant.with_timezone(&Utc)))
            .map_err(|_| Error::storage(format!("unreadable stored timestamp {value:?}")))
    }

    /// The wire form: UTC, microseconds, `Z`.
    pub fn to_rfc3339(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// The stored form: microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    /// Reads the stored form back; a value outside the years 0001–9999 was not written by us.
    pub fn from_micros(micros: i64) -> Result<Timestamp, Error> {
        DateTime::from_timestamp_micros(micros)
            .filter(|instant| (1..=9999).contains(&instant.year()))
            .map(Timestamp)
            .ok_or_else(|| Error::storage(format!("unreadable stored instant {micros}")))
    }

    pub fn instant(self) -> DateTime<Utc> {
        self.0
    }

    /// This instant `duration` later (saturating at the end of chrono's range).
    pub(crate) fn plus(self, duration: std::time::Duration) -> Timestamp {
        chrono::TimeDelta::from_std(duration)
            .ok()
            .and_then(|delta| self.0.checked_add_signed(delta))
            .map_or(self, Timestamp)
    }

    /// Microseconds from `earlier` to this instant (negative if it is later).
    pub(crate) fn micros_since(self, earlier: Timestamp) -> i64 {
        self.micros() - earlier.micros()
    }

    /// Whole seconds since the Unix epoch (Standard Webhooks' `webhook-timestamp`).
    pub(crate) fn unix_seconds(self) -> i64 {
        self.0.timestamp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_honoured() {
        let t = Timestamp::parse("at", "2026-03-01T10:00:00+05:30").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-01T04:30:00.000000Z");
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
    fn the_stored_form_round_trips_and_sorts_as_time() {
        for text in [
            "0001-01-01T00:00:00.000000Z",
            "1969-12-31T23:59:59.500000Z",
            "2026-03-01T04:30:00.000001Z",
            "9999-12-31T23:59:59.999999Z",
        ] {
            let t = Timestamp::parse("at", text).unwrap();
            assert_eq!(Timestamp::from_micros(t.micros()).unwrap(), t);
            assert_eq!(
                Timestamp::from_micros(t.micros()).unwrap().to_rfc3339(),
                text
            );
        }
        let a = Timestamp::parse("at", "1969-12-31T23:59:59.999999Z").unwrap();
        let b = Timestamp::parse("at", "1970-01-01T00:00:00Z").unwrap();
        assert!(a.micros() < b.micros());
        assert!(Timestamp::from_micros(i64::MAX).is_err());
    }

    #[test]
    fn wire_form_sorts_as_time() {
        let a = Timestamp::parse("at", "2026-03-01T09:59:59.999999Z")
            .unwrap()
            .to_rfc3339();
        let b = Timestamp::parse("at", "2026-03-01T10:00:00Z")
            .unwrap()
            .to_rfc3339();
        assert!(a < b);
        assert_eq!(a.len(), b.len());
    }
}
