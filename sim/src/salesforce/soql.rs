//! SOQL: the subset the sync needs, parsed strictly and evaluated over the rows, and the
//! `/query` + `/query/{locator}` paging around it.
//!
//! Grammar: `SELECT f[, f...] FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST]
//! [, ...]] [LIMIT n]`, keywords case-insensitive. A condition is `f op literal` (`=`, `!=`,
//! `<>`, `<`, `>`, `<=`, `>=`), `f [NOT] IN (literal, ...)`, or conditions joined by `AND` or
//! `OR` and grouped with parentheses; as in real SOQL, mixing `AND` and `OR` without
//! parentheses is an error. Literals: `'string'`, `true`, `false`, `null`, and unquoted
//! dateTimes such as `2024-01-01T00:00:00Z`. Text comparisons ignore case, as SOQL's do.

use super::SfRow;
use super::State;
use super::errors::ApiError;
use super::http::ApiVersion;
use super::schema::{self, FieldSpec, FieldType, parse_datetime};
use super::store::{field_value, looks_like_id, record_id};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use std::cmp::Ordering;

/// Prefix of query locators.
const LOCATOR_PREFIX: &str = "01g5g0000";
/// Most records one page may hold.
const MAX_PAGE: usize = 2000;

/// `GET /query?q=...`: the first page of the result.
pub(crate) fn query(
    state: &mut State,
    version: ApiVersion,
    soql: Option<&str>,
) -> Result<Value, ApiError> {
    let soql = soql
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("MALFORMED_QUERY", "A query string has to be specified")
                .with_fields(vec!["q".into()])
        })?;
    let query = Query::parse(soql, &state.schema, &state.config.object)?;
    let records: Vec<Value> = query
        .run(&state.store.rows)
        .into_iter()
        .map(|row| query.output(row, &state.config.object, version))
        .collect();
    let page_size = page_size(state);
    if records.len() <= page_size && !state.config.endless_query {
        return Ok(json!({"totalSize": records.len(), "done": true, "records": records}));
    }
    state.cursor_serial += 1;
    let locator = record_id(LOCATOR_PREFIX, state.cursor_serial);
    let first_page = page(
        &records,
        &locator,
        0,
        page_size,
        version,
        state.config.endless_query,
    );
    state.cursors.insert(locator, records);
    Ok(first_page)
}

/// `GET /query/{locator}`: the page starting at the locator's offset.
pub(crate) fn query_more(
    state: &mut State,
    version: ApiVersion,
    locator: &str,
) -> Result<Value, ApiError> {
    let invalid = || ApiError::bad_request("INVALID_QUERY_LOCATOR", "invalid query locator");
    let (cursor, offset) = locator.rsplit_once('-').ok_or_else(invalid)?;
    let offset: usize = offset.parse().map_err(|_| invalid())?;
    let page_size = page_size(state);
    let records = state
        .cursors
        .get(cursor)
        .filter(|records| offset < records.len())
        .ok_or_else(invalid)?;
    Ok(page(
        records,
        cursor,
        offset,
        page_size,
        version,
        state.config.endless_query,
    ))
}

fn page_size(state: &State) -> usize {
    state.config.query_page_size.clamp(1, MAX_PAGE)
}

/// One page; `nextRecordsUrl` is a relative path, present only when more records follow.
fn page(
    records: &[Value],
    cursor: &str,
    offset: usize,
    page_size: usize,
    version: ApiVersion,
    endless: bool,
) -> Value {
    let end = (offset + page_size).min(records.len());
    let mut answer = json!({"totalSize": records.len(), "done": end == records.len(), "records": &records[offset..end]});
    if endless {
        answer["done"] = json!(false);
        answer["nextRecordsUrl"] =
            json!(format!("/services/data/{version}/query/{cursor}-{offset}"));
    } else if end < records.len() {
        answer["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{cursor}-{end}"));
    }
    answer
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Comma,
    Open,
    Close,
    Op(Op),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    /// 1-based, for the error message.
    column: usize,
    text: String,
}

#[derive(Clone, Debug, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    Null,
    DateTime(DateTime<Utc>),
    /// An unquoted number or date: valid SOQL, but no field of this object takes it.
    Other(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Condition {
    Compare {
        field: String,
        field_type: FieldType,
        op: Op,
        value: Literal,
    },
    In {
        field: String,
        field_type: FieldType,
        negated: bool,
        values: Vec<Literal>,
    },
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

#[derive(Clone, Debug, PartialEq)]
struct OrderBy {
    field: String,
    field_type: FieldType,
    descending: bool,
    nulls_last: bool,
}

/// A parsed query, with field names in their canonical spelling.
#[derive(Clone, Debug, PartialEq)]
struct Query {
    fields: Vec<String>,
    condition: Option<Condition>,
    order: Vec<OrderBy>,
    limit: Option<usize>,
}

impl Query {
    fn parse(soql: &str, schema: &[FieldSpec], object: &str) -> Result<Query, ApiError> {
        let mut parser = Parser {
            tokens: lex(soql)?,
            position: 0,
            soql,
            schema,
            object,
        };
        parser.query()
    }

    fn run<'a>(&self, rows: &'a [SfRow]) -> Vec<&'a SfRow> {
        let mut selected: Vec<&SfRow> = rows
            .iter()
            .filter(|row| self.condition.as_ref().is_none_or(|c| matches(c, row)))
            .collect();
        selected.sort_by(|a, b| {
            self.order.iter().fold(Ordering::Equal, |acc, key| {
                acc.then_with(|| {
                    order_values(
                        &field_value(a, &key.field),
                        &field_value(b, &key.field),
                        key,
                    )
                })
            })
        });
        if let Some(limit) = self.limit {
            selected.truncate(limit);
        }
        selected
    }

    fn output(&self, row: &SfRow, object: &str, version: ApiVersion) -> Value {
        let mut record = Map::new();
        record.insert(
            "attributes".into(),
            json!({"type": object, "url": format!("/services/data/{version}/sobjects/{object}/{}", row.id)}),
        );
        for field in &self.fields {
            record.insert(field.clone(), field_value(row, field));
        }
        Value::Object(record)
    }
}

fn lex(soql: &str) -> Result<Vec<Token>, ApiError> {
    let chars: Vec<char> = soql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let next = chars.get(i + 1).copied();
        let tok = match chars[i] {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ',' => Tok::Comma,
            '(' => Tok::Open,
            ')' => Tok::Close,
            '=' => Tok::Op(Op::Eq),
            '!' if next == Some('=') => Tok::Op(Op::Ne),
            '<' if next == Some('=') => Tok::Op(Op::Le),
            '<' if next == Some('>') => Tok::Op(Op::Ne),
            '<' => Tok::Op(Op::Lt),
            '>' if next == Some('=') => Tok::Op(Op::Ge),
            '>' => Tok::Op(Op::Gt),
            '\'' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(malformed(soql, start + 1, "<EOF>")),
                        Some('\'') => break,
                        Some('\\') => {
                            let unescaped = match chars.get(i + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some(c @ ('\'' | '"' | '\\')) => *c,
                                _ => return Err(malformed(soql, i + 1, "\\")),
                            };
                            text.push(unescaped);
                            i += 2;
                        }
                        Some(c) => {
                            text.push(*c);
                            i += 1;
                        }
                    }
                }
                Tok::Str(text)
            }
            c if c.is_alphanumeric() || c == '_' => {
                // Unquoted dateTimes carry ':', '-' and '+'; identifiers never start with a digit.
                let numeric = c.is_ascii_digit();
                let word_char = |c: char| {
                    c.is_alphanumeric()
                        || c == '_'
                        || c == '.'
                        || (numeric && matches!(c, ':' | '-' | '+'))
                };
                let end = (i..chars.len())
                    .find(|&j| !word_char(chars[j]))
                    .unwrap_or(chars.len());
                i = end - 1;
                Tok::Word(chars[start..end].iter().collect())
            }
            c => return Err(malformed(soql, start + 1, &c.to_string())),
        };
        i += match tok {
            Tok::Op(Op::Ne | Op::Le | Op::Ge) => 2,
            _ => 1,
        };
        tokens.push(Token {
            tok,
            column: start + 1,
            text: chars[start..i].iter().collect(),
        });
    }
    tokens.push(Token {
        tok: Tok::End,
        column: chars.len() + 1,
        text: "<EOF>".into(),
    });
    Ok(tokens)
}

/// `MALFORMED_QUERY` with the query, a caret under the offending token and its text.
fn malformed(soql: &str, column: usize, token: &str) -> ApiError {
    let caret = " ".repeat(column.saturating_sub(1));
    ApiError::bad_request(
        "MALFORMED_QUERY",
        format!("\n{soql}\n{caret}^\nERROR at Row:1:Column:{column}\nunexpected token: '{token}'"),
    )
}

fn filter_error(message: String) -> ApiError {
    ApiError::bad_request("INVALID_QUERY_FILTER_OPERATOR", message)
}

struct Parser<'a> {
    tokens: Vec<Token>,
    position: usize,
    soql: &'a str,
    schema: &'a [FieldSpec],
    object: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.position]
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.position].clone();
        if token.tok != Tok::End {
            self.position += 1;
        }
        token
    }

    fn unexpected(&self) -> ApiError {
        let token = self.peek();
        malformed(self.soql, token.column, &token.text)
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(&self.peek().tok, Tok::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), ApiError> {
        if !self.at_keyword(keyword) {
            return Err(self.unexpected());
        }
        self.advance();
        Ok(())
    }

    fn field(&mut self) -> Result<&FieldSpec, ApiError> {
        let Tok::Word(name) = &self.peek().tok else {
            return Err(self.unexpected());
        };
        let Some(field) = schema::find(self.schema, name) else {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!(
                    "No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
                    self.object
                ),
            ));
        };
        self.advance();
        Ok(field)
    }

    fn query(&mut self) -> Result<Query, ApiError> {
        self.keyword("SELECT")?;
        let mut fields = vec![self.field()?.name.clone()];
        while self.peek().tok == Tok::Comma {
            self.advance();
            fields.push(self.field()?.name.clone());
        }
        self.keyword("FROM")?;
        match &self.peek().tok {
            Tok::Word(name) if name.eq_ignore_ascii_case(self.object) => {
                self.advance();
            }
            Tok::Word(name) => {
                return Err(ApiError::bad_request(
                    "INVALID_TYPE",
                    format!(
                        "sObject type '{name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
                    ),
                ));
            }
            _ => return Err(self.unexpected()),
        }
        let mut query = Query {
            fields,
            condition: None,
            order: Vec::new(),
            limit: None,
        };
        if self.at_keyword("WHERE") {
            self.advance();
            query.condition = Some(self.condition()?);
        }
        if self.at_keyword("ORDER") {
            self.advance();
            self.keyword("BY")?;
            query.order.push(self.order_key()?);
            while self.peek().tok == Tok::Comma {
                self.advance();
                query.order.push(self.order_key()?);
            }
        }
        if self.at_keyword("LIMIT") {
            self.advance();
            let limit = match &self.peek().tok {
                Tok::Word(digits) => digits.parse::<usize>().ok(),
                _ => None,
            };
            query.limit = Some(limit.ok_or_else(|| self.unexpected())?);
            self.advance();
        }
        if self.peek().tok != Tok::End {
            return Err(self.unexpected());
        }
        Ok(query)
    }

    /// Conditions joined by one kind of connective.
    fn condition(&mut self) -> Result<Condition, ApiError> {
        let mut parts = vec![self.term()?];
        let mut connective: Option<&str> = None;
        loop {
            let next = ["AND", "OR"].into_iter().find(|k| self.at_keyword(k));
            let Some(next) = next else { break };
            // SOQL needs parentheses to mix AND with OR.
            if connective.is_some_and(|c| c != next) {
                return Err(self.unexpected());
            }
            connective = Some(next);
            self.advance();
            parts.push(self.term()?);
        }
        Ok(match connective {
            None => parts.remove(0),
            Some("AND") => Condition::All(parts),
            Some(_) => Condition::Any(parts),
        })
    }

    fn term(&mut self) -> Result<Condition, ApiError> {
        if self.peek().tok == Tok::Open {
            self.advance();
            let inner = self.condition()?;
            if self.peek().tok != Tok::Close {
                return Err(self.unexpected());
            }
            self.advance();
            return Ok(inner);
        }
        let field = self.field()?.clone();
        if field.is_long_text() {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("field '{}' can not be filtered in a query call", field.name),
            ));
        }
        let negated = self.at_keyword("NOT");
        if negated || self.at_keyword("IN") {
            if negated {
                self.advance();
            }
            self.keyword("IN")?;
            let values = self.literal_list(&field)?;
            return Ok(Condition::In {
                field: field.name,
                field_type: field.field_type,
                negated,
                values,
            });
        }
        let Tok::Op(op) = self.peek().tok else {
            return Err(self.unexpected());
        };
        self.advance();
        let value = self.literal(&field)?;
        if field.field_type == FieldType::Boolean && !matches!(op, Op::Eq | Op::Ne) {
            return Err(filter_error(format!(
                "invalid operator on boolean field '{}'",
                field.name
            )));
        }
        Ok(Condition::Compare {
            field: field.name,
            field_type: field.field_type,
            op,
            value,
        })
    }

    fn literal_list(&mut self, field: &FieldSpec) -> Result<Vec<Literal>, ApiError> {
        if self.peek().tok != Tok::Open {
            return Err(self.unexpected());
        }
        self.advance();
        let mut values = vec![self.literal(field)?];
        while self.peek().tok == Tok::Comma {
            self.advance();
            values.push(self.literal(field)?);
        }
        if self.peek().tok != Tok::Close {
            return Err(self.unexpected());
        }
        self.advance();
        Ok(values)
    }

    /// A literal, checked against the type of the field it is compared with.
    fn literal(&mut self, field: &FieldSpec) -> Result<Literal, ApiError> {
        let literal = match &self.peek().tok {
            Tok::Str(text) => Literal::Str(text.clone()),
            Tok::Word(word) if word.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Word(word) if word.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(word) if word.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(word) if word.starts_with(|c: char| c.is_ascii_digit()) => {
                match parse_datetime(word) {
                    Some(at) => Literal::DateTime(at),
                    None => Literal::Other(word.clone()),
                }
            }
            _ => return Err(self.unexpected()),
        };
        self.advance();
        let name = &field.name;
        let accepted = match (field.field_type, &literal) {
            (_, Literal::Null) => true,
            (FieldType::Id, Literal::Str(id)) if !looks_like_id(id) => {
                return Err(filter_error(format!("invalid ID field: {id}")));
            }
            (
                FieldType::Id | FieldType::String | FieldType::Textarea | FieldType::Picklist,
                Literal::Str(_),
            ) => true,
            (FieldType::Boolean, Literal::Bool(_))
            | (FieldType::Datetime, Literal::DateTime(_)) => true,
            _ => false,
        };
        if accepted {
            return Ok(literal);
        }
        Err(filter_error(match field.field_type {
            FieldType::Boolean => {
                format!(
                    "value of filter criterion for field '{name}' must be of type boolean and should not be enclosed in quotes"
                )
            }
            FieldType::Datetime => {
                format!(
                    "value of filter criterion for field '{name}' must be of type dateTime and should not be enclosed in quotes"
                )
            }
            _ => format!(
                "value of filter criterion for field '{name}' must be of type string and should be enclosed in quotes"
            ),
        }))
    }

    fn order_key(&mut self) -> Result<OrderBy, ApiError> {
        let field = self.field()?.clone();
        if field.is_long_text() {
            return Err(ApiError::bad_request(
                "INVALID_FIELD",
                format!("field '{}' can not be sorted in a query call", field.name),
            ));
        }
        let descending = self.at_keyword("DESC");
        if descending || self.at_keyword("ASC") {
            self.advance();
        }
        // SOQL's default: nulls first ascending, last descending.
        let mut nulls_last = descending;
        if self.at_keyword("NULLS") {
            self.advance();
            nulls_last = self.at_keyword("LAST");
            if !nulls_last && !self.at_keyword("FIRST") {
                return Err(self.unexpected());
            }
            self.advance();
        }
        Ok(OrderBy {
            field: field.name,
            field_type: field.field_type,
            descending,
            nulls_last,
        })
    }
}

fn matches(condition: &Condition, row: &SfRow) -> bool {
    match condition {
        Condition::All(parts) => parts.iter().all(|c| matches(c, row)),
        Condition::Any(parts) => parts.iter().any(|c| matches(c, row)),
        Condition::Compare {
            field,
            field_type,
            op,
            value,
        } => compare(&field_value(row, field), *field_type, *op, value),
        Condition::In {
            field,
            field_type,
            negated,
            values,
        } => {
            let actual = field_value(row, field);
            values
                .iter()
                .any(|value| compare(&actual, *field_type, Op::Eq, value))
                != *negated
        }
    }
}

fn compare(actual: &Value, field_type: FieldType, op: Op, literal: &Literal) -> bool {
    let ordering = match (actual, literal) {
        (Value::Null, _) | (_, Literal::Null) => None,
        (Value::String(a), Literal::Str(b)) => Some(compare_text(a, b, field_type)),
        (Value::String(a), Literal::DateTime(b)) => parse_datetime(a).map(|a| a.cmp(b)),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let both_null = actual.is_null() && *literal == Literal::Null;
    match op {
        Op::Eq => both_null || ordering == Some(Ordering::Equal),
        Op::Ne => !(both_null || ordering == Some(Ordering::Equal)),
        Op::Lt => ordering == Some(Ordering::Less),
        Op::Gt => ordering == Some(Ordering::Greater),
        Op::Le => ordering.is_some_and(|o| o != Ordering::Greater),
        Op::Ge => ordering.is_some_and(|o| o != Ordering::Less),
    }
}

/// Ids compare by their case-sensitive 15-character form; other text ignores case.
fn compare_text(a: &str, b: &str, field_type: FieldType) -> Ordering {
    if field_type == FieldType::Id {
        a.get(..15).unwrap_or(a).cmp(b.get(..15).unwrap_or(b))
    } else {
        a.to_lowercase().cmp(&b.to_lowercase())
    }
}

fn order_values(a: &Value, b: &Value, key: &OrderBy) -> Ordering {
    let null_side = if key.nulls_last {
        Ordering::Greater
    } else {
        Ordering::Less
    };
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => null_side,
        (_, Value::Null) => null_side.reverse(),
        _ => {
            // Stored dateTimes share one fixed-width UTC format, so text order is time order.
            let ordering = match (a, b) {
                (Value::String(a), Value::String(b)) => compare_text(a, b, key.field_type),
                (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
                _ => Ordering::Equal,
            };
            if key.descending {
                ordering.reverse()
            } else {
                ordering
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::salesforce::default_schema;

    fn parse(soql: &str) -> Result<Query, ApiError> {
        Query::parse(soql, &default_schema(), "Disposition__c")
    }

    fn code(result: Result<Query, ApiError>) -> String {
        result.expect_err("the query should be refused").entries[0]
            .code
            .clone()
    }

    #[test]
    fn parses_the_supported_subset_case_insensitively() {
        let query = parse(
            "select id, name FROM disposition__c where (IsActive__c = TRUE or Category__c NOT IN ('Sales', null)) \
             AND LastModifiedDate >= 2024-01-01T00:00:00Z order by Name desc nulls first, Id LIMIT 10",
        )
        .unwrap();
        assert_eq!(query.fields, ["Id", "Name"]);
        assert_eq!(query.limit, Some(10));
        assert_eq!(query.order.len(), 2);
        assert!(query.order[0].descending && !query.order[0].nulls_last);
        let Some(Condition::All(parts)) = &query.condition else {
            panic!("expected AND at the top")
        };
        assert!(matches!(parts[0], Condition::Any(_)));
    }

    #[test]
    fn refuses_what_soql_refuses() {
        assert_eq!(
            code(parse("SELECT Name FROM Disposition__c WHERE")),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code(parse(
                "SELECT Name FROM Disposition__c WHERE Name = 'a' AND Name = 'b' OR Name = 'c'"
            )),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code(parse("SELECT Name FROM Disposition__c LIMIT x")),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code(parse(
                "SELECT Name FROM Disposition__c WHERE Name = 'unterminated"
            )),
            "MALFORMED_QUERY"
        );
        assert_eq!(
            code(parse("SELECT Nope__c FROM Disposition__c")),
            "INVALID_FIELD"
        );
        assert_eq!(code(parse("SELECT Name FROM Account")), "INVALID_TYPE");
        assert_eq!(
            code(parse(
                "SELECT Name FROM Disposition__c WHERE IsActive__c = 'true'"
            )),
            "INVALID_QUERY_FILTER_OPERATOR"
        );
        assert_eq!(
            code(parse("SELECT Name FROM Disposition__c WHERE Name = 5")),
            "INVALID_QUERY_FILTER_OPERATOR"
        );
        assert_eq!(
            code(parse(
                "SELECT Name FROM Disposition__c WHERE LastModifiedDate > '2024-01-01T00:00:00Z'"
            )),
            "INVALID_QUERY_FILTER_OPERATOR"
        );
        assert_eq!(
            code(parse(
                "SELECT Name FROM Disposition__c WHERE Description__c = 'x'"
            )),
            "INVALID_FIELD"
        );
    }

    #[test]
    fn malformed_messages_point_at_the_token() {
        let error = parse("SELECT Name FROM Disposition__c WHERE Name = 'a' LIMIT").unwrap_err();
        assert!(
            error.entries[0]
                .message
                .contains("unexpected token: '<EOF>'"),
            "{}",
            error.entries[0].message
        );
    }

    #[test]
    fn text_comparison_ignores_case_and_nulls_match_only_null() {
        let value = json!("Sales");
        assert!(compare(
            &value,
            FieldType::Picklist,
            Op::Eq,
            &Literal::Str("sales".into())
        ));
        assert!(!compare(
            &Value::Null,
            FieldType::Picklist,
            Op::Eq,
            &Literal::Str("sales".into())
        ));
        assert!(compare(
            &Value::Null,
            FieldType::Picklist,
            Op::Eq,
            &Literal::Null
        ));
        assert!(compare(
            &Value::Null,
            FieldType::Picklist,
            Op::Ne,
            &Literal::Str("x".into())
        ));
        assert!(!compare(
            &Value::Null,
            FieldType::Datetime,
            Op::Lt,
            &Literal::DateTime(Utc::now())
        ));
    }
}
