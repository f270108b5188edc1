//! The switches for what the real Admin API does that no source pins down (timestamp format,
//! field types, wrapping, empty pages, page cap), and the time formats they produce and accept.
//!
//! Every switch defaults to the most likely real behaviour; tests flip them to prove a client
//! copes with the alternatives.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// How the Admin API shapes its answers. Switchable at run time
/// ([`crate::cxone::CxoneTenant::set_admin_modes`], `PUT /_sim/admin-modes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminModes {
    /// Fractional digits of `lastUpdated`: 0, 3 (default) or 7.
    pub precision: Precision,
    /// Zone of `lastUpdated`: `"Z"` (default), an offset such as `"+00:00"` or `"-05:00"`, or
    /// `"none"` (a local time with no zone, meant as UTC).
    pub zone: Zone,
    /// `classificationId` as a JSON string, as in the old list schema.
    pub classification_id_as_string: bool,
    /// `dispositionId` as a numeric JSON string.
    pub disposition_id_as_string: bool,
    /// List items without `isActive`, as in API versions before it was added to the list (the
    /// by-id answer still has it).
    pub list_without_is_active: bool,
    /// By-id answers wrapped as `{"dispositions": [obj]}` instead of the bare object.
    pub get_wrapped: bool,
    /// An empty page answers `200` with `"dispositions": []` instead of `204` with no body.
    pub empty_page_as_200: bool,
    /// Serve at most this many rows per page whatever `top` asks (silently, as servers cap).
    pub page_cap: Option<u32>,
    /// Refuse a `top` above this with `400` instead (a server that validates it).
    pub max_top: Option<u32>,
}

/// Fractional digits of a served `lastUpdated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Precision {
    /// `2024-05-01T12:34:56Z`
    Seconds,
    /// `2024-05-01T12:34:56.789Z`
    #[default]
    Millis,
    /// `2024-05-01T12:34:56.7890000Z`: .NET's ticks, as CXone's `server-time` shows.
    Ticks,
}

impl TryFrom<u8> for Precision {
    type Error = String;
    fn try_from(digits: u8) -> Result<Self, String> {
        match digits {
            0 => Ok(Precision::Seconds),
            3 => Ok(Precision::Millis),
            7 => Ok(Precision::Ticks),
            other => Err(format!("precision must be 0, 3 or 7, not {other}")),
        }
    }
}

impl From<Precision> for u8 {
    fn from(precision: Precision) -> u8 {
        match precision {
            Precision::Seconds => 0,
            Precision::Millis => 3,
            Precision::Ticks => 7,
        }
    }
}

/// The zone suffix of a served `lastUpdated`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Zone {
    #[default]
    Z,
    /// The same instant shown at this offset from UTC, e.g. `+02:00`.
    Offset(FixedOffset),
    /// No zone at all; the digits are UTC.
    Naive,
}

impl TryFrom<String> for Zone {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "Z" | "z" => Ok(Zone::Z),
            "none" => Ok(Zone::Naive),
            offset => offset
                .parse::<FixedOffset>()
                .map(Zone::Offset)
                .map_err(|_| {
                    format!("zone must be \"Z\", \"none\" or like \"+02:00\", not {text:?}")
                }),
        }
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        match zone {
            Zone::Z => "Z".into(),
            Zone::Offset(offset) => offset.to_string(),
            Zone::Naive => "none".into(),
        }
    }
}

/// `at` as the Admin API serves it under these modes.
pub fn format_last_updated(at: DateTime<Utc>, precision: Precision, zone: Zone) -> String {
    let local = match zone {
        Zone::Offset(offset) => at.with_timezone(&offset).naive_local(),
        Zone::Z | Zone::Naive => at.naive_utc(),
    };
    let whole = local.format("%Y-%m-%dT%H:%M:%S");
    let nanos = local.and_utc().timestamp_subsec_nanos();
    let fraction = match precision {
        Precision::Seconds => String::new(),
        Precision::Millis => format!(".{:03}", nanos / 1_000_000),
        Precision::Ticks => format!(".{:07}", nanos / 100),
    };
    let suffix = match zone {
        Zone::Z => "Z".to_owned(),
        Zone::Offset(offset) => offset.to_string(),
        Zone::Naive => String::new(),
    };
    format!("{whole}{fraction}{suffix}")
}

/// An ISO-8601 time as clients send it and as stored records may hold it: `Z` or `±HH:MM`
/// (`±HHMM` too), any number of fractional digits, or no zone at all (read as UTC). A space
/// where the offset sign should be is read as `+`: form decoding turns an unencoded `+` into
/// one.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    // Only a space after the seconds can be a mangled `+`; one between date and time is not.
    let text = match text.rfind(' ') {
        Some(i) if i > 10 => format!("{}+{}", &text[..i], &text[i + 1..]),
        _ => text.to_owned(),
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(&text) {
        return Some(at.with_timezone(&Utc));
    }
    if let Ok(at) = DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(at.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Each precision and zone produces its documented form of the same instant.
    #[test]
    fn formats_follow_the_modes() {
        let t = at("2024-05-01T12:34:56.789123456Z");
        let plus2 = Zone::try_from("+02:00".to_owned()).unwrap();
        assert_eq!(
            format_last_updated(t, Precision::Millis, Zone::Z),
            "2024-05-01T12:34:56.789Z"
        );
        assert_eq!(
            format_last_updated(t, Precision::Seconds, Zone::Naive),
            "2024-05-01T12:34:56"
        );
        assert_eq!(
            format_last_updated(t, Precision::Ticks, plus2),
            "2024-05-01T14:34:56.7891234+02:00"
        );
    }

    /// Every accepted input form reads as the intended instant; nonsense reads as nothing.
    #[test]
    fn parsing_is_liberal_about_zone_and_digits() {
        let t = at("2024-05-01T12:34:56Z");
        assert_eq!(parse_instant("2024-05-01T12:34:56Z"), Some(t));
        assert_eq!(parse_instant("2024-05-01T14:34:56+02:00"), Some(t));
        assert_eq!(parse_instant("2024-05-01T14:34:56 02:00"), Some(t));
        assert_eq!(parse_instant("2024-05-01T14:34:56+0200"), Some(t));
        assert_eq!(parse_instant("2024-05-01T12:34:56"), Some(t));
        assert_eq!(
            parse_instant("2024-05-01T12:34:56.1234567Z"),
            Some(at("2024-05-01T12:34:56.1234567Z"))
        );
        assert_eq!(parse_instant("last tuesday"), None);
    }
}
