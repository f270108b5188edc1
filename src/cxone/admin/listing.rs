//! `GET …/dispositions` pages and when the listing ends.
//!
//! A page is `{"totalRecords", "dispositions": [...], "_links": {"next"}}`, or `204 No Content`
//! when there is nothing (more) to read. A server may return fewer rows than `top` without being
//! at the end, so a short page ends the listing only when nothing else says whether more follow.
//! The listing ends when:
//! - a page is empty (or 204);
//! - `totalRecords` rows have been read;
//! - the page has `_links` whose `next` is null, absent or empty;
//! - a short page arrives and the page has neither `totalRecords` nor `_links`.
//!
//! A server that never ends the listing is stopped after a bounded number of pages, and one that
//! ignores `skip` (a page of rows already read) at once.

use super::super::Moves;
use super::records::WireInt;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::HashSet;

/// One page of the list, as sent.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListPage {
    #[serde(default)]
    pub total_records: Option<WireInt>,
    /// Rows as JSON text: each is read straight into its typed record, never into a tree.
    #[serde(default)]
    pub dispositions: Option<Vec<Box<RawValue>>>,
    #[serde(default, rename = "_links")]
    pub links: Option<Links>,
}

#[derive(Deserialize, Default)]
pub(super) struct Links {
    #[serde(default)]
    pub next: Option<Value>,
}

impl ListPage {
    /// The rows the page holds.
    pub fn rows(&self) -> usize {
        self.dispositions.as_ref().map_or(0, Vec::len)
    }

    /// Whether the server says another page follows: `Some(false)` for `_links` without a
    /// usable `next`, `None` when the page has no `_links` at all (older API versions).
    fn next_page(&self) -> Option<bool> {
        let links = self.links.as_ref()?;
        Some(matches!(&links.next, Some(Value::String(s)) if !s.trim().is_empty()))
    }
}

/// What to do after a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Ask for the page starting at `skip`.
    Next {
        skip: u64,
    },
    Done,
}

/// The state of one listing: rows read, pages asked for, versions seen.
pub(super) struct Paging {
    top: u32,
    max_pages: u32,
    pages: u32,
    read: u64,
    /// `(dispositionId, lastUpdated)` of every row read, as sent.
    versions: HashSet<(String, String)>,
    /// Ids read, to notice a listing that moved (a code edited while we paged).
    moves: Moves,
}

impl Paging {
    pub fn new(top: u32, max_pages: u32) -> Self {
        Self {
            top,
            max_pages,
            pages: 0,
            read: 0,
            versions: HashSet::new(),
            moves: Moves::default(),
        }
    }

    /// Whether an id was read twice: the listing moved, and a row may have been missed.
    pub fn moved(&self) -> bool {
        self.moves.moved
    }

    /// Takes in one page (`None` for a 204) and says what comes next.
    pub fn after(&mut self, page: Option<&ListPage>) -> Result<Step, String> {
        self.pages += 1;
        let Some(page) = page else {
            return Ok(Step::Done);
        };
        let rows = page.dispositions.as_deref().unwrap_or_default();
        if rows.is_empty() {
            return Ok(Step::Done);
        }
        let mut progress = false;
        for row in rows {
            let RowKey { id, version } = RowKey::of(row);
            let id = text(id.as_ref());
            let version = (id.clone(), text(version.as_ref()));
            progress |= self.versions.insert(version);
            self.moves.note(id);
        }
        if !progress {
            return Err(format!(
                "skip={} returned only rows already read: the server ignores skip",
                self.read
            ));
        }
        self.read = self.read.saturating_add(rows.len() as u64);
        let total = page.total_records.map(|t| t.0);
        if total.is_some_and(|total| self.read >= total) {
            return Ok(Step::Done);
        }
        match page.next_page() {
            Some(false) => return Ok(Step::Done),
            None if total.is_none() && rows.len() < self.top as usize => return Ok(Step::Done),
            _ => {}
        }
        if self.pages >= self.max_pages {
            return Err(format!(
                "still not at the end after {} pages ({} rows): the server never ends the listing",
                self.pages, self.read
            ));
        }
        Ok(Step::Next { skip: self.read })
    }
}

/// The two fields of a row that tell rows apart, as sent.
#[derive(Deserialize, Default)]
struct RowKey {
    #[serde(default, rename = "dispositionId")]
    id: Option<Value>,
    #[serde(default, rename = "lastUpdated")]
    version: Option<Value>,
}

impl RowKey {
    /// The key of a row; empty for a row that is not an object.
    fn of(row: &RawValue) -> Self {
        if !row.get().starts_with('{') {
            return Self::default();
        }
        serde_json::from_str(row.get()).unwrap_or_default()
    }
}

/// A field as text, for telling rows apart (absent or odd values read as empty).
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.trim().to_owned(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows(ids: std::ops::Range<u64>) -> Vec<Value> {
        ids.map(|i| json!({"dispositionId": i, "lastUpdated": "2024-01-01T00:00:00Z"}))
            .collect()
    }

    fn page(rows: Vec<Value>, total: Option<u64>, links: Option<Option<&str>>) -> ListPage {
        parse(json!({
            "totalRecords": total,
            "dispositions": rows,
            "_links": links.map(|next| json!({"self": "s", "next": next})),
        }))
    }

    fn parse(page: Value) -> ListPage {
        serde_json::from_str(&page.to_string()).unwrap()
    }

    /// A page shorter than `top` does not end the listing while `totalRecords` says more.
    #[test]
    fn a_short_page_with_more_to_come_continues() {
        let mut paging = Paging::new(100, 1000);
        let first = page(rows(0..50), Some(120), None);
        assert_eq!(paging.after(Some(&first)), Ok(Step::Next { skip: 50 }));
        let second = page(rows(50..100), Some(120), Some(Some("https://x/next")));
        assert_eq!(paging.after(Some(&second)), Ok(Step::Next { skip: 100 }));
        let last = page(rows(100..120), Some(120), Some(Some("https://x/next")));
        assert_eq!(paging.after(Some(&last)), Ok(Step::Done));
    }

    /// `_links.next` null (or empty, or absent from `_links`) ends the listing.
    #[test]
    fn a_null_next_ends_the_listing() {
        for links in [
            json!({"next": null}),
            json!({"next": ""}),
            json!({"self": "s"}),
        ] {
            let mut paging = Paging::new(10, 1000);
            let page =
                parse(json!({"totalRecords": 500, "dispositions": rows(0..10), "_links": links}));
            assert_eq!(paging.after(Some(&page)), Ok(Step::Done), "{links}");
        }
    }

    /// 204 and an empty page end the listing.
    #[test]
    fn no_content_and_empty_pages_end_the_listing() {
        assert_eq!(Paging::new(10, 10).after(None), Ok(Step::Done));
        let empty = page(vec![], Some(0), Some(None));
        assert_eq!(Paging::new(10, 10).after(Some(&empty)), Ok(Step::Done));
    }

    /// Without `totalRecords` or `_links`, a full page continues and a short one ends.
    #[test]
    fn bare_pages_end_on_a_short_page() {
        let mut paging = Paging::new(10, 100);
        let full = page(rows(0..10), None, None);
        assert_eq!(paging.after(Some(&full)), Ok(Step::Next { skip: 10 }));
        let short = page(rows(10..13), None, None);
        assert_eq!(paging.after(Some(&short)), Ok(Step::Done));
    }

    /// A server whose listing never ends is stopped after the page bound.
    #[test]
    fn a_never_ending_server_is_stopped() {
        let mut paging = Paging::new(10, 3);
        for n in 0..2u64 {
            let p = page(rows(n * 10..n * 10 + 10), None, Some(Some("more")));
            assert!(matches!(paging.after(Some(&p)), Ok(Step::Next { .. })));
        }
        let p = page(rows(20..30), None, Some(Some("more")));
        assert!(paging.after(Some(&p)).unwrap_err().contains("never ends"));
    }

    /// A page of rows already read means `skip` is ignored: an error, not an endless loop.
    #[test]
    fn a_server_ignoring_skip_is_refused() {
        let mut paging = Paging::new(10, 100);
        let p = page(rows(0..10), Some(100), None);
        assert_eq!(paging.after(Some(&p)), Ok(Step::Next { skip: 10 }));
        assert!(paging.after(Some(&p)).unwrap_err().contains("ignores skip"));
    }

    /// A code read again in a newer version (edited while we paged) is noticed.
    #[test]
    fn a_code_that_moved_is_noticed() {
        let mut paging = Paging::new(2, 100);
        let first = page(rows(0..2), Some(4), None);
        paging.after(Some(&first)).unwrap();
        assert!(!paging.moved());
        let moved = json!({"dispositionId": 0, "lastUpdated": "2024-02-01T00:00:00Z"});
        let second = page(vec![rows(3..4).remove(0), moved], Some(4), None);
        assert_eq!(paging.after(Some(&second)), Ok(Step::Done));
        assert!(paging.moved());
    }

    /// A row read twice in the same version (pages served on either side of an edit) means
    /// another row may have slipped past unseen: the listing moved too.
    #[test]
    fn a_row_read_twice_in_one_version_is_noticed() {
        let mut paging = Paging::new(2, 100);
        paging
            .after(Some(&page(rows(0..2), Some(4), None)))
            .unwrap();
        assert!(!paging.moved());
        let second = page(rows(1..3), Some(4), None);
        assert_eq!(paging.after(Some(&second)), Ok(Step::Done));
        assert!(paging.moved());
    }
}
